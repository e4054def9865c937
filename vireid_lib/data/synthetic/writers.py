"""Write small synthetic datasets in exactly the real on-disk layouts.

The real SYSU-MM01, RegDB, LLCM, HITSZ-VCM and BUPTCampus need a licence form, so tests and demos run on these
twins. Each writer produces the same folders, file names, metadata files and image formats
as the real dataset (PROTOCOLS.md), so every code path from files to scores runs unchanged.
Identities are rendered by :mod:`.render`: one consistent appearance per person, in colour
for visible cameras and as a heat image for infrared ones, so they can be learned across
modalities. Numbers measured on them are smoke tests, never reproductions of a paper.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..records import INFRARED, VISIBLE
from ..skeletons import FILE_NAME as SKELETON_FILE
from ..skeletons import source_of, write_skeletons
from .render import Identity, Scene, render, sample_identity, sample_pose, walk

MARKER = ".vireid_synthetic.json"
# Raised when what the writers put on disk changes (2: the VCM skeleton store records its dataset and
# estimator; 3: and the fingerprint of its frames; 4: BUPTCampus's twin has its skeleton store too), so that cached
# twins made by an older generator are made again rather than reused.
GENERATOR_VERSION = 4


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs shared by the three writers; defaults generate all three in seconds."""

    ids: int = 40
    seed: int = 0
    width: int = 64
    height: int = 128

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


def _start(config: SyntheticConfig, minimum: int, dataset: str) -> tuple[np.random.Generator, list[Identity]]:
    """The writer's generator and its crowd of ``config.ids`` people, after checking the count."""
    if config.ids < minimum:
        raise ValueError(f"ids={config.ids} is too few for a synthetic {dataset}; use at least {minimum}.")
    rng = np.random.default_rng(config.seed)
    return rng, [sample_identity(rng) for _ in range(config.ids)]


def _write_marker(root: Path, kind: str, config: SyntheticConfig, extra: dict) -> None:
    info = {"kind": kind, "synthetic": True, "generator": GENERATOR_VERSION, "config": asdict(config), **extra}
    (root / MARKER).write_text(json.dumps(info, indent=1))


# -- SYSU-MM01 -------------------------------------------------------------------------
def write_sysu(root: Path | str, config: SyntheticConfig = SyntheticConfig()) -> dict:
    """``cam1..cam6/PPPP/NNNN.jpg`` and ``exp/{train,val,test}_id.txt`` (first line, comma-separated).

    Identity numbers have gaps, as in the real dataset; some test identities are never seen
    by the indoor cameras 1-2 (their indoor-search queries have no match, as in the real
    data), and folder sizes straddle 10 so the 10-shot gallery meets both cases.
    """
    root = Path(root)
    rng, crowd = _start(config, 6, "SYSU-MM01")
    n = config.ids
    pids = np.sort(rng.choice(np.arange(1, 534), size=n, replace=False))
    n_test = max(2, round(0.3 * n))
    n_val = max(1, round(0.1 * n))
    order = rng.permutation(n)
    test = sorted(int(p) for p in pids[order[:n_test]])
    val = sorted(int(p) for p in pids[order[n_test:n_test + n_val]])
    train = sorted(int(p) for p in pids[order[n_test + n_val:]])
    people = dict(zip((int(p) for p in pids), crowd))
    counts = {"images": 0}
    for pid in sorted(people):
        visible = [c for c in (1, 2, 4, 5) if rng.random() < 0.75] or [int(rng.choice([1, 2, 4, 5]))]
        infrared = [c for c in (3, 6) if rng.random() < 0.75] or [int(rng.choice([3, 6]))]
        if pid == test[0]:
            # One test identity the indoor cameras never see: its indoor queries cannot match.
            visible = [c for c in visible if c in (4, 5)] or [4]
        cameras = visible + infrared
        for cam in cameras:
            folder = root / f"cam{cam}" / f"{pid:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            modality = INFRARED if cam in (3, 6) else VISIBLE
            for k in range(1, int(rng.integers(4, 14)) + 1):
                image, _ = render(people[pid], sample_pose(rng), Scene(cam, modality), config.size, rng)
                image.save(folder / f"{k:04d}.jpg", quality=92)
                counts["images"] += 1
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir(parents=True, exist_ok=True)
    exp = root / "exp"
    exp.mkdir(parents=True, exist_ok=True)
    for name, ids in (("train_id.txt", train), ("val_id.txt", val), ("test_id.txt", test)):
        (exp / name).write_text(",".join(str(i) for i in ids) + "\n")
    summary = {"train_ids": len(train), "val_ids": len(val), "test_ids": len(test), **counts}
    _write_marker(root, "sysu", config, summary)
    return summary


# -- RegDB ----------------------------------------------------------------------------
def write_regdb(root: Path | str, config: SyntheticConfig = SyntheticConfig(), images_per_id: int = 10) -> dict:
    """``Visible/<id>/*.bmp``, ``Thermal/<id>/*.bmp`` and ``idx/{train,test}_{visible,thermal}_K.txt``.

    As in RegDB, the visible and thermal images of an identity are captured together, so
    image k of both modalities shares the pose. Each trial splits the identities in half
    at random; train labels are 0..N/2-1, test labels the identity number minus one.
    """
    root = Path(root)
    rng, people = _start(config, 4, "RegDB")
    n = config.ids
    files: dict[int, dict[int, list[str]]] = {VISIBLE: {}, INFRARED: {}}
    for pid, person in enumerate(people, start=1):
        gender = "male" if rng.random() < 0.5 else "female"
        view = str(rng.choice(["front", "back"]))
        for modality, folder in ((VISIBLE, "Visible"), (INFRARED, "Thermal")):
            (root / folder / str(pid)).mkdir(parents=True, exist_ok=True)
            files[modality][pid] = []
        for k in range(1, images_per_id + 1):
            pose = sample_pose(rng)
            for modality, folder, letter in ((VISIBLE, "Visible", "v"), (INFRARED, "Thermal", "t")):
                relative = f"{folder}/{pid}/{gender}_{view}_{letter}_{pid:05d}_{k}.bmp"
                image, _ = render(person, pose, Scene(1 if modality == VISIBLE else 2, modality), config.size, rng)
                image.save(root / relative)
                files[modality][pid].append(relative)
    idx = root / "idx"
    idx.mkdir(parents=True, exist_ok=True)
    for trial in range(1, 11):
        order = np.random.default_rng([config.seed, trial]).permutation(np.arange(1, n + 1))
        train, test = sorted(order[: n // 2].tolist()), sorted(order[n // 2:].tolist())
        for modality, name in ((VISIBLE, "visible"), (INFRARED, "thermal")):
            lines = [f"{p} {label}" for label, pid in enumerate(train) for p in files[modality][pid]]
            (idx / f"train_{name}_{trial}.txt").write_text("\n".join(lines) + "\n")
            lines = [f"{p} {pid - 1}" for pid in test for p in files[modality][pid]]
            (idx / f"test_{name}_{trial}.txt").write_text("\n".join(lines) + "\n")
    summary = {"ids": n, "images": 2 * n * images_per_id, "trials": 10}
    _write_marker(root, "regdb", config, summary)
    return summary


# -- HITSZ-VCM ------------------------------------------------------------------------
VCM_CAMERAS = (1, 2, 3, 4, 5, 6)
VCM_MODALITY_CODE = {INFRARED: 1, VISIBLE: 2}


def write_vcm(
    root: Path | str,
    config: SyntheticConfig = SyntheticConfig(ids=24),
    tree: str = "merged",
    info: str = "info",
    train_fraction: float = 0.55,
) -> dict:
    """Tracklets in the HITSZ-VCM layout, with walking people and their true COCO-17 skeletons.

    ``tree`` is ``merged`` (one image tree under the root, MITML's layout) or ``split``
    (``Train/`` and ``Test/``); ``info`` is ``info`` (files in ``info/``) or ``root``.
    Frame names follow the real ``PPPPM<m>D<c>T<t>F<f>.jpg`` pattern (m = 1 infrared,
    2 visible). Tracklet lengths range from 7 to 30 frames, so some fall under the 12-frame
    filter; every identity is seen by at least two cameras in each modality.
    """
    if tree not in ("merged", "split") or info not in ("info", "root"):
        raise ValueError(f"tree={tree!r} must be 'merged' or 'split' and info={info!r} 'info' or 'root'.")
    root = Path(root)
    rng, people = _start(config, 4, "HITSZ-VCM")
    n = config.ids
    n_train = max(2, min(n - 2, round(train_fraction * n)))
    skeletons: dict[str, list[tuple[str, np.ndarray]]] = defaultdict(list)
    frame_paths: dict[str, Path] = {}  # pid/mod/cam/file -> image, what the store's fingerprint covers
    frame_counter: dict[tuple[int, int, int], int] = defaultdict(int)
    subsets = {"train": (range(1, n_train + 1), []), "test": (range(n_train + 1, n + 1), [])}
    tracks: dict[str, list[list[int]]] = {"train": [], "test": []}
    for subset, (pids, names) in subsets.items():
        image_root = root / ("Train" if subset == "train" else "Test") if tree == "split" else root
        for pid in pids:
            person = people[pid - 1]
            for modality in (INFRARED, VISIBLE):
                cameras = rng.choice(VCM_CAMERAS, size=int(rng.integers(2, 4)), replace=False)
                lengths = [int(rng.integers(7, 31)) for _ in cameras]
                if max(lengths) < 12:
                    lengths[0] = int(rng.integers(12, 31))  # every identity keeps a usable tracklet
                for t, (cam, length) in enumerate(zip(sorted(cameras.tolist()), lengths), start=1):
                    code = VCM_MODALITY_CODE[modality]
                    start = len(names) + 1
                    folder = f"{pid:04d}/{'ir' if modality == INFRARED else 'rgb'}/D{cam}"
                    (image_root / folder).mkdir(parents=True, exist_ok=True)
                    for pose in walk(rng, length):
                        # Frame numbers run on within a camera folder so tracklets never collide.
                        frame_counter[pid, modality, cam] += 1
                        file = f"{frame_counter[pid, modality, cam]:04d}.jpg"
                        image, keypoints = render(person, pose, Scene(cam, modality), config.size, rng)
                        image.save(image_root / folder / file, quality=92)
                        skeletons[folder].append((file, keypoints))
                        frame_paths[f"{folder}/{file}"] = image_root / folder / file
                        names.append(f"{pid:04d}M{code}D{cam}T{t:03d}F{file}")
                    tracks[subset].append([code, start, len(names), pid, cam])
    info_dir = root / "info" if info == "info" else root
    info_dir.mkdir(parents=True, exist_ok=True)
    for subset, (_, names) in subsets.items():
        (info_dir / f"{subset}_name.txt").write_text("\n".join(names) + "\n")
        (info_dir / f"track_{subset}_info.txt").write_text("\n".join(" ".join(map(str, r)) for r in tracks[subset]) + "\n")
    # As in the real data, the queries are the infrared test tracklets, chosen before any filter.
    query = [str(row) for row, r in enumerate(tracks["test"], start=1) if r[0] == VCM_MODALITY_CODE[INFRARED]]
    (info_dir / "query_IDX.txt").write_text(" ".join(query) + "\n")
    # The ground truth carries the fingerprint an extraction over these frames would record, so it is
    # checked at a run start like any extracted store (and refused beside another twin's images).
    write_skeletons(root / SKELETON_FILE, skeletons, dataset="vcm", estimator="ground truth",
                    source=source_of(frame_paths))
    frames = sum(len(names) for _, names in subsets.values())
    summary = {"train_ids": n_train, "test_ids": n - n_train, "tracklets": sum(map(len, tracks.values())),
               "frames": frames, "tree": tree, "info": info}
    _write_marker(root, "vcm", config, summary)
    return summary


# -- LLCM ---------------------------------------------------------------------------------
LLCM_CAMERAS = {VISIBLE: tuple(range(1, 10)), INFRARED: (1, 2, 4, 5, 6, 7, 8, 9)}


def write_llcm(root: Path | str, config: SyntheticConfig = SyntheticConfig(), train_fraction: float = 0.6) -> dict:
    """``idx/train_{vis,nir}.txt`` ('relative/path label'), ``idx/test_id.txt`` (first line, comma-separated) and
    ``test_{vis,nir}/camK/PPPP/*.jpg`` (no near-infrared camera 3), as the LLCM release lays them out; training
    images under ``vis/PPPP/`` and ``nir/PPPP/`` named ``PPPP_cCC_sSSSSSS_fFFFF_{vis,nir}.jpg``.

    The camera numbers are shared by the two modalities, as in the real data: each identity is seen by one camera
    number in both (the same-camera match LLCM's scoring removes), and by others in one modality only.
    """
    root = Path(root)
    rng, crowd = _start(config, 6, "LLCM")
    n = config.ids
    pids = list(range(1, n + 1))
    order = rng.permutation(n)
    n_train = max(2, min(n - 2, round(train_fraction * n)))
    train = sorted(pids[i] for i in order[:n_train])
    test = sorted(pids[i] for i in order[n_train:])
    counts = {"images": 0}
    lines: dict[int, list[str]] = {VISIBLE: [], INFRARED: []}
    labels = {pid: label for label, pid in enumerate(train)}
    names = {VISIBLE: "vis", INFRARED: "nir"}
    for pid in pids:
        person = crowd[pid - 1]
        shared = int(rng.choice(LLCM_CAMERAS[INFRARED]))  # a camera number that sees this person in both modalities
        for modality in (VISIBLE, INFRARED):
            others = [c for c in LLCM_CAMERAS[modality] if c != shared]
            cameras = sorted({shared, *(int(c) for c in rng.choice(others, size=int(rng.integers(1, 3)), replace=False))})
            for cam in cameras:
                if pid in labels:
                    folder = root / names[modality] / f"{pid:04d}"
                else:
                    folder = root / f"test_{names[modality]}" / f"cam{cam}" / f"{pid:04d}"
                folder.mkdir(parents=True, exist_ok=True)
                for k in range(int(rng.integers(2, 6))):
                    # low light: the visible cameras see a darker scene than the other twins
                    image, _ = render(person, sample_pose(rng), Scene(cam, modality), config.size, rng)
                    if modality == VISIBLE:
                        image = image.point(lambda v: int(v * 0.55))
                    file = f"{pid:04d}_c{cam:02d}_s{int(rng.integers(100000, 999999))}_f{k:04d}_{names[modality]}.jpg"
                    image.save(folder / file, quality=92)
                    counts["images"] += 1
                    if pid in labels:
                        lines[modality].append(f"{names[modality]}/{pid:04d}/{file} {labels[pid]}")
    for modality in (VISIBLE, INFRARED):
        for cam in LLCM_CAMERAS[modality]:
            (root / f"test_{names[modality]}" / f"cam{cam}").mkdir(parents=True, exist_ok=True)
    idx = root / "idx"
    idx.mkdir(parents=True, exist_ok=True)
    (idx / "train_vis.txt").write_text("\n".join(lines[VISIBLE]) + "\n")
    (idx / "train_nir.txt").write_text("\n".join(lines[INFRARED]) + "\n")
    (idx / "test_id.txt").write_text(",".join(str(p) for p in test) + "\n")
    summary = {"train_ids": len(train), "test_ids": len(test), **counts}
    _write_marker(root, "llcm", config, summary)
    return summary


# -- BUPTCampus ---------------------------------------------------------------------------
BUPT_CAMERAS = ("LS3", "G25", "CQ1", "W4", "TSG1", "TSG2")


def write_bupt(root: Path | str, config: SyntheticConfig = SyntheticConfig(ids=24)) -> dict:
    """``DATA/<pid>/{IR,RGB}/<camera>/<pid>_<MOD>_<camera>_<tracklet>_<frame>.jpg``, ``data_paths.json`` and the
    ``train.txt``, ``train_auxiliary.txt``, ``query.txt`` and ``gallery.txt`` lists beside ``DATA/``, as BUPTCampus
    ships them. Every tracklet is a pair: the visible and infrared frames of one walk, pixel-aligned as the real
    pairs; the auxiliary identities are seen by one camera each; every test identity has one query tracklet (of one
    modality) and gallery tracklets of both, from its other cameras. Identity numbers run past 9 so that the
    training labels' string order (``"10"`` before ``"9"``) differs from the numeric one, as in the real lists. The
    true COCO-17 keypoints of every frame go to ``skeletons_coco17.h5`` (the store an extraction would write).
    """
    root = Path(root)
    rng, people = _start(config, 6, "BUPTCampus")
    n = config.ids
    pids = list(range(1, n + 1))
    n_train, n_aux = max(2, round(0.45 * n)), max(1, round(0.15 * n))
    order = rng.permutation(n)
    train = sorted(pids[i] for i in order[:n_train])
    aux = sorted(pids[i] for i in order[n_train:n_train + n_aux])
    test = sorted(pids[i] for i in order[n_train + n_aux:])
    paths: dict = {}
    lists: dict[str, list[str]] = {"train": [], "auxiliary": [], "query": [], "gallery": []}
    frames = 0
    skeletons: dict[str, list[tuple[str, np.ndarray]]] = defaultdict(list)  # pid/mod/cam -> (file, keypoints)
    frame_paths: dict[str, Path] = {}
    for pid in pids:
        person = people[pid - 1]
        count = 1 if pid in aux else int(rng.integers(2, 4))
        cameras = sorted(rng.choice(len(BUPT_CAMERAS), size=count, replace=False).tolist())
        for index, cam in enumerate(cameras):
            camera, tracklet = BUPT_CAMERAS[cam], "1"
            walk_poses = walk(rng, int(rng.integers(6, 16)))
            for modality, code in ((VISIBLE, "RGB"), (INFRARED, "IR")):
                folder = root / "DATA" / str(pid) / code / camera
                folder.mkdir(parents=True, exist_ok=True)
                names = []
                for k, pose in enumerate(walk_poses):
                    image, keypoints = render(person, pose, Scene(cam + 1, modality), config.size, rng)
                    name = f"{pid}_{code}_{camera}_{tracklet}_{k:04d}.jpg"
                    image.save(folder / name, quality=92)
                    names.append(f"{pid}/{code}/{camera}/{name}")
                    skeletons[f"{pid}/{code}/{camera}"].append((name, keypoints))
                    frame_paths[f"{pid}/{code}/{camera}/{name}"] = folder / name
                    frames += 1
                paths.setdefault(str(pid), {}).setdefault(code, {}).setdefault(camera, {})[tracklet] = names
            if pid in train:
                lists["train"].append(f"{pid} RGB/IR {camera} {tracklet}")
            elif pid in aux:
                lists["auxiliary"].append(f"{pid} RGB/IR {camera} {tracklet}")
            elif index == 0:  # the query: one modality of the first camera's tracklet
                lists["query"].append(f"{pid} {'RGB' if rng.random() < 0.5 else 'IR'} {camera} {tracklet}")
            else:
                lists["gallery"] += [f"{pid} RGB {camera} {tracklet}", f"{pid} IR {camera} {tracklet}"]
    (root / "data_paths.json").write_text(json.dumps(paths))
    for split, name in (("train", "train.txt"), ("auxiliary", "train_auxiliary.txt"), ("query", "query.txt"),
                        ("gallery", "gallery.txt")):
        (root / name).write_text("\n".join(lists[split]) + "\n")
    # True keypoints, as for HITSZ-VCM's twin: STAR reads them (keyed pid/modality/camera/file like an extraction)
    write_skeletons(root / SKELETON_FILE, skeletons, dataset="bupt", estimator="ground truth",
                    source=source_of(frame_paths))
    summary = {"train_ids": len(train), "auxiliary_ids": len(aux), "test_ids": len(test), "frames": frames}
    _write_marker(root, "bupt", config, summary)
    return summary


WRITERS = {"sysu": write_sysu, "regdb": write_regdb, "vcm": write_vcm, "llcm": write_llcm, "bupt": write_bupt}
DEFAULT_CONFIGS = {"sysu": SyntheticConfig(), "regdb": SyntheticConfig(), "vcm": SyntheticConfig(ids=24),
                   "llcm": SyntheticConfig(), "bupt": SyntheticConfig(ids=24)}
