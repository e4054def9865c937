"""The synthetic person renderer: keypoints, modalities, walking, and cross-modal identity."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from vireid_lib.data.records import INFRARED, VISIBLE
from vireid_lib.data.synthetic.render import (
    COCO17_LIMBS, COCO17_NAMES, FACINGS, Identity, Pose, Scene, render, sample_identity, sample_pose, walk,
)

SIZE = (64, 128)
LEFT = [i for i, n in enumerate(COCO17_NAMES) if n.startswith("left_")]
RIGHT = [i for i, n in enumerate(COCO17_NAMES) if n.startswith("right_")]
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = range(5)
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = range(5, 11)
L_HIP, R_HIP = 11, 12


def person(seed: int = 0) -> Identity:
    return sample_identity(np.random.default_rng(seed))


def plain_person(seed: int = 0, **changes: object) -> Identity:
    """A person without the optional extras, for tests that probe particular pixels."""
    base = dict(sleeve="short", lower="shorts", coat=False, pattern="plain", hat="none", bag="none", hair="short")
    return replace(person(seed), **{**base, **changes})


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def at(array: np.ndarray, point: np.ndarray) -> float:
    """Mean of a 3x3 patch around ``point`` (x, y) of a grey image."""
    x, y = int(round(point[0])), int(round(point[1]))
    return float(array[y - 1 : y + 2, x - 1 : x + 2].mean())


def front(phase: float = 0.0, **changes: object) -> Pose:
    return replace(Pose(phase=phase, facing="front", scale=0.85, cx=0.5, ground=0.95), **changes)


# -- keypoints ---------------------------------------------------------------------------
def test_coco17_definition() -> None:
    assert COCO17_NAMES == (
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    )
    # the 19 edges of the official COCO person skeleton, 0-based
    official = [(16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
                (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7)]
    assert {frozenset(edge) for edge in COCO17_LIMBS} == {frozenset((a - 1, b - 1)) for a, b in official}
    assert len(COCO17_LIMBS) == 19


@pytest.mark.parametrize("modality", [VISIBLE, INFRARED])
@pytest.mark.parametrize("size", [SIZE, (128, 256)])
def test_render_returns_an_image_and_keypoints_inside_it(modality: int, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    for _ in range(15):
        image, keypoints = render(person(int(rng.integers(100))), sample_pose(rng), Scene(2, modality), size, rng)
        assert image.mode == "RGB" and image.size == size
        assert keypoints.shape == (17, 3) and keypoints.dtype == np.float32
        assert (keypoints[:, 0] >= 0).all() and (keypoints[:, 0] <= size[0] - 1).all()
        assert (keypoints[:, 1] >= 0).all() and (keypoints[:, 1] <= size[1] - 1).all()
        assert ((keypoints[:, 2] >= 0) & (keypoints[:, 2] <= 1)).all()
        # anatomy: head above shoulders above hips above knees above ankles
        assert keypoints[0, 1] < keypoints[5, 1] < keypoints[11, 1] < keypoints[13, 1] < keypoints[15, 1]


def test_keypoints_follow_the_pose_geometry() -> None:
    pose = front(0.25)
    _, small = render(person(1), pose, Scene(1, VISIBLE), SIZE, np.random.default_rng(0))
    _, large = render(person(1), pose, Scene(1, VISIBLE), (128, 256), np.random.default_rng(0))
    np.testing.assert_allclose(large[:, :2], 2 * small[:, :2], atol=1e-3)
    # person height ~ scale * image height; the lower ankle stands on the ground line
    height = small[:, 1].max() - small[0, 1]
    assert 0.6 * 0.85 * SIZE[1] < height < 0.95 * 0.85 * SIZE[1]
    assert abs(small[15:17, 1].max() - 0.95 * SIZE[1] + 0.045 * 0.85 * SIZE[1]) < 1.0
    # facing the camera, the person's left is on the image's right
    assert small[L_SHOULDER, 0] > small[R_SHOULDER, 0] and small[L_HIP, 0] > small[R_HIP, 0]
    _, back = render(person(1), replace(pose, facing="back"), Scene(1, VISIBLE), SIZE, np.random.default_rng(0))
    assert back[L_SHOULDER, 0] < back[R_SHOULDER, 0]


def test_left_and_right_are_mirror_images() -> None:
    pose = Pose(phase=0.3, facing="left", scale=0.85, cx=0.5, ground=0.95)
    _, left = render(person(2), pose, Scene(1, INFRARED), SIZE, np.random.default_rng(0))
    _, right = render(person(2), replace(pose, facing="right"), Scene(1, INFRARED), SIZE, np.random.default_rng(0))
    centre = 0.5 * SIZE[0]
    np.testing.assert_allclose(left[:, 0] - centre, centre - right[:, 0], atol=1e-3)
    np.testing.assert_allclose(left[:, 1], right[:, 1], atol=1e-3)
    assert left[NOSE, 0] < left[R_EAR, 0]  # the face points the way the person walks


def test_hidden_joints_score_lower() -> None:
    rng = np.random.default_rng(2)
    scores = {f: render(person(), front(0.0, facing=f), Scene(1, VISIBLE), SIZE, rng)[1][:, 2] for f in FACINGS}
    # walking left, the person's left side faces the camera and the right limbs are behind
    assert (scores["left"][LEFT] > scores["left"][RIGHT]).all()
    assert (scores["right"][RIGHT] > scores["right"][LEFT]).all()
    assert scores["right"][L_WRIST] < 0.5 and scores["right"][R_WRIST] > 0.8
    # from behind the face is hidden, the ears are not
    assert scores["back"][[NOSE, L_EYE, R_EYE]].max() < 0.2 < scores["back"][[L_EAR, R_EAR]].min()
    assert scores["front"][[NOSE, L_EYE, R_EYE]].min() > 0.9
    assert (scores["front"][5:] > 0.9).all() and (scores["back"][5:] > 0.9).all()


# -- determinism and the figure ----------------------------------------------------------
@pytest.mark.parametrize("modality", [VISIBLE, INFRARED])
def test_same_inputs_same_image(modality: int) -> None:
    pose = sample_pose(np.random.default_rng(5))
    a, ka = render(person(3), pose, Scene(4, modality), SIZE, np.random.default_rng(9))
    b, kb = render(person(3), pose, Scene(4, modality), SIZE, np.random.default_rng(9))
    assert np.array_equal(pixels(a), pixels(b)) and np.array_equal(ka, kb)
    c, kc = render(person(3), pose, Scene(4, modality), SIZE, np.random.default_rng(10))
    assert not np.array_equal(pixels(a), pixels(c)) and np.array_equal(ka, kc)


def test_the_figure_is_drawn_on_its_keypoints() -> None:
    """In infrared, skin at the keypoints is hot against a cool background everywhere."""
    identity = plain_person(4, skin_heat=0.95)
    for facing in FACINGS:
        image, keypoints = render(identity, front(0.1, facing=facing), Scene(2, INFRARED), SIZE,
                                  np.random.default_rng(0))
        heat = pixels(image)[..., 0]
        background = np.median(heat[:, :8])
        near = keypoints[:, 2] > 0.5
        for j in np.flatnonzero(near)[5:]:  # visible body joints
            assert at(heat, keypoints[j]) > background + 40, (facing, COCO17_NAMES[j])
        if facing != "back":
            assert at(heat, keypoints[NOSE]) > background + 40


# -- modalities --------------------------------------------------------------------------
def test_infrared_is_a_heat_image_not_a_grey_copy() -> None:
    rng = np.random.default_rng(4)
    correlations = []
    for seed in range(12):
        pose = front(0.3)
        visible, _ = render(person(seed), pose, Scene(1, VISIBLE), SIZE, rng)
        thermal, keypoints = render(person(seed), pose, Scene(3, INFRARED), SIZE, rng)
        t = pixels(thermal)
        assert np.array_equal(t[..., 0], t[..., 1]) and np.array_equal(t[..., 1], t[..., 2])
        v = pixels(visible) @ [0.299, 0.587, 0.114]
        correlations.append(np.corrcoef(v.ravel(), t[..., 0].ravel())[0, 1])
        # the face (exposed skin) is hotter than the background
        assert at(t[..., 0], keypoints[NOSE]) > np.median(t[..., 0]) + 20
    assert max(correlations) < 0.95 and np.mean(correlations) < 0.8


def test_skin_is_hotter_than_clothing_and_hair_is_cool() -> None:
    identity = plain_person(5, top_heat=0.6, lower_heat=0.55, hair_heat=0.35)
    image, kp = render(identity, front(0.0), Scene(1, INFRARED), SIZE, np.random.default_rng(0))
    heat = pixels(image)[..., 0]
    forearms = [at(heat, (kp[e, :2] + kp[w, :2]) / 2) for e, w in ((L_ELBOW, L_WRIST), (R_ELBOW, R_WRIST))]
    chest = at(heat, (kp[L_SHOULDER, :2] + kp[R_SHOULDER, :2] + kp[L_HIP, :2] + kp[R_HIP, :2]) / 4)
    face = at(heat, kp[NOSE, :2] + (0, 1))
    crown = at(heat, (kp[NOSE, 0], kp[NOSE, 1] - 0.09 * 0.85 * SIZE[1]))
    background = np.median(heat[:, :6])
    assert min(forearms) > chest + 40 and face > chest + 40
    assert chest > background + 30
    assert crown < face - 40  # hair covers the top of the head and is cool


def test_infrared_ignores_colour_and_visible_ignores_heat() -> None:
    identity = person(6)
    pose = sample_pose(np.random.default_rng(1))
    recoloured = replace(identity, top_rgb=(250, 10, 10), lower_rgb=(10, 250, 10), pattern_rgb=(0, 0, 0))
    reheated = replace(identity, top_heat=0.3, lower_heat=0.8, skin_heat=0.7)

    def image(ident: Identity, modality: int) -> np.ndarray:
        return pixels(render(ident, pose, Scene(1, modality), SIZE, np.random.default_rng(3))[0])

    assert np.array_equal(image(identity, INFRARED), image(recoloured, INFRARED))
    assert not np.array_equal(image(identity, VISIBLE), image(recoloured, VISIBLE))
    assert np.array_equal(image(identity, VISIBLE), image(reheated, VISIBLE))
    assert not np.array_equal(image(identity, INFRARED), image(reheated, INFRARED))


@pytest.mark.parametrize("modality", [VISIBLE, INFRARED])
def test_stripes_show_in_both_modalities(modality: int) -> None:
    base = plain_person(7, sleeve="long", top_rgb=(40, 60, 160), pattern_rgb=(235, 235, 235),
                        top_heat=0.55, pattern_heat=0.72)
    striped = replace(base, pattern="stripes", pattern_count=3)
    profiles = []
    for ident in (base, striped):
        image, kp = render(ident, front(0.0), Scene(1, modality), SIZE, np.random.default_rng(0))
        grey = pixels(image).mean(axis=2)
        x = int(round((kp[L_SHOULDER, 0] + kp[R_SHOULDER, 0]) / 2))
        top, bottom = int(kp[L_SHOULDER, 1]) + 2, int(kp[L_HIP, 1]) - 4
        profiles.append(grey[top:bottom, x - 1 : x + 2].mean(axis=1))
    plain, stripes = profiles
    assert stripes.std() > 3 * plain.std() + 3
    # three stripes make at least five light/dark changes down the chest
    crossings = np.count_nonzero(np.diff(np.sign(stripes - stripes.mean())) != 0)
    assert crossings >= 5


def test_camera_keeps_its_background_look() -> None:
    """Same camera: similar backgrounds; another camera: a different base look."""
    rng = np.random.default_rng(11)
    nobody = Pose(phase=0.0, facing="front", scale=0.7, cx=0.5, ground=0.95)

    def mean_colour(camera: int) -> np.ndarray:
        return np.mean([pixels(render(person(), nobody, Scene(camera, VISIBLE), SIZE, rng)[0])[:20].mean(axis=(0, 1))
                        for _ in range(8)], axis=0)

    def background(camera: int) -> np.ndarray:
        return pixels(render(person(), nobody, Scene(camera, INFRARED), SIZE, rng)[0])[:, :8, 0]

    colours = [mean_colour(c) for c in (1, 2, 3, 1)]
    assert np.abs(colours[0] - colours[3]).sum() < min(np.abs(colours[0] - colours[1]).sum(),
                                                        np.abs(colours[0] - colours[2]).sum())
    heat = background(4)
    assert heat.mean() < 130  # a cool background


# -- poses and walking -------------------------------------------------------------------
def test_sample_pose_ranges() -> None:
    rng = np.random.default_rng(0)
    poses = [sample_pose(rng) for _ in range(300)]
    assert {p.facing for p in poses} == set(FACINGS)
    assert all(0 <= p.phase < 1 and 0.7 <= p.scale <= 0.95 and 0.3 < p.cx < 0.7 for p in poses)
    assert all(p.scale < p.ground <= 1.0 for p in poses)


def test_walk_advances_phase_and_stays_in_frame() -> None:
    rng = np.random.default_rng(6)
    facings = set()
    for _ in range(12):
        poses = walk(rng, 30)
        assert len(poses) == 30 and len({p.facing for p in poses}) == 1
        facing = poses[0].facing
        facings.add(facing)
        steps = np.diff(np.unwrap([p.phase * 2 * np.pi for p in poses])) / (2 * np.pi)
        assert 0.05 < steps.mean() < 0.13 and (steps > 0).all()
        cx = np.array([p.cx for p in poses])
        scale = np.array([p.scale for p in poses])
        assert np.abs(np.diff(cx)).max() < 0.04 and scale.max() / scale.min() < 1.15
        if facing in ("left", "right"):
            assert np.sign(cx[-1] - cx[0]) == (1 if facing == "right" else -1)
        identity = person(int(rng.integers(50)))
        for pose in poses[::6]:
            _, keypoints = render(identity, pose, Scene(1, INFRARED), SIZE, rng)
            assert (keypoints[:, :2] >= 0).all() and (keypoints[:, 0] <= SIZE[0] - 1).all()
            assert (keypoints[:, 1] <= SIZE[1] - 1).all()
    assert len(facings) >= 3
    assert walk(rng, 0) == [] and len(walk(rng, 1)) == 1


def test_walking_swings_limbs_in_antiphase() -> None:
    side = Pose(phase=0.25, facing="right", scale=0.85, cx=0.5, ground=0.95)
    _, a = render(person(8), side, Scene(1, VISIBLE), SIZE, np.random.default_rng(0))
    _, b = render(person(8), replace(side, phase=0.75), Scene(1, VISIBLE), SIZE, np.random.default_rng(0))
    # at phase 0.25 the left leg is forward and the left arm back; half a cycle later, reversed
    assert a[15, 0] > a[16, 0] and a[L_WRIST, 0] < a[R_WRIST, 0]
    assert b[15, 0] < b[16, 0] and b[L_WRIST, 0] > b[R_WRIST, 0]
    # the body bobs: lower with the legs spread than when they pass each other
    _, mid = render(person(8), replace(side, phase=0.0), Scene(1, VISIBLE), SIZE, np.random.default_rng(0))
    assert mid[NOSE, 1] < a[NOSE, 1]


# -- identities --------------------------------------------------------------------------
def test_identities_are_diverse() -> None:
    rng = np.random.default_rng(0)
    people = [sample_identity(rng) for _ in range(500)]
    shapes = {(p.sleeve, p.lower, p.coat, p.pattern, p.pattern_count, p.hair, p.hat, p.bag, p.bag_side)
              for p in people}
    assert len(shapes) > 150
    assert len(set(people)) == 500
    # exposed skin is the hottest thing a person shows in infrared
    assert all(max(p.hair_heat, p.top_heat, p.pattern_heat, p.lower_heat, p.hat_heat, p.bag_heat, p.shoe_heat)
               < p.skin_heat - 0.08 for p in people)
    assert all(0 <= p.hair_heat and p.skin_heat <= 1 for p in people)
    # garment heat follows thickness, not colour: it is uncorrelated with brightness
    brightness = [sum(p.top_rgb) for p in people]
    assert abs(np.corrcoef(brightness, [p.top_heat for p in people])[0, 1]) < 0.15


def test_different_people_look_different() -> None:
    pose = front(0.2)
    images = [pixels(render(person(s), pose, Scene(1, VISIBLE), SIZE, np.random.default_rng(0))[0]) for s in range(6)]
    thermal = [pixels(render(person(s), pose, Scene(1, INFRARED), SIZE, np.random.default_rng(0))[0]) for s in range(6)]
    for i in range(6):
        for j in range(i + 1, 6):
            assert np.abs(images[i] - images[j]).mean() > 3
            assert np.abs(thermal[i] - thermal[j]).mean() > 1


def shape_descriptor(image: Image.Image, keypoints: np.ndarray) -> np.ndarray:
    """A HOG-like histogram of gradient orientations over the person's crop: shape, not colour."""
    grey = pixels(image).mean(axis=2)
    x0, x1 = max(0, int(keypoints[:, 0].min()) - 6), min(SIZE[0], int(keypoints[:, 0].max()) + 7)
    y0, y1 = max(0, int(keypoints[:, 1].min()) - 8), min(SIZE[1], int(keypoints[:, 1].max()) + 6)
    crop = np.asarray(Image.fromarray(grey[y0:y1, x0:x1]).resize((32, 64)), dtype=np.float64)
    gy, gx = np.gradient(crop)
    magnitude = np.hypot(gx, gy)
    bins = np.minimum(((np.arctan2(gy, gx) % np.pi) / np.pi * 6).astype(int), 5)
    cells = [np.bincount(bins[i:i + 4, j:j + 4].ravel(), magnitude[i:i + 4, j:j + 4].ravel(), 6)
             for i in range(0, 64, 4) for j in range(0, 32, 4)]
    feature = np.sqrt(np.concatenate(cells))
    return (feature - feature.mean()) / (feature.std() + 1e-9)


@pytest.mark.parametrize("vary_phase, least", [(False, 0.5), (True, 0.25)])
def test_identity_is_recognisable_across_modalities(vary_phase: bool, least: float) -> None:
    """Shape links the modalities: an infrared person's gradient histogram finds its visible
    twin among 20 people far above chance (1/20), with the pose held (as in RegDB) and with
    only the facing held (the walking phase differs)."""
    rng = np.random.default_rng(8)
    people = [person(100 + s) for s in range(20)]
    gallery, query = [], []
    for p in people:
        pose = sample_pose(rng)
        gallery.append(shape_descriptor(*render(p, pose, Scene(1, VISIBLE), SIZE, rng)))
        if vary_phase:
            pose = replace(pose, phase=float(rng.random()))
        query.append(shape_descriptor(*render(p, pose, Scene(3, INFRARED), SIZE, rng)))
    rank1 = np.mean((np.stack(query) @ np.stack(gallery).T).argmax(axis=1) == np.arange(20))
    assert rank1 >= least


# -- errors ------------------------------------------------------------------------------
def test_bad_arguments_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="facing"):
        render(person(), replace(front(), facing="up"), Scene(1, VISIBLE), SIZE, rng)
    with pytest.raises(ValueError, match="modality"):
        render(person(), front(), Scene(1, 2), SIZE, rng)
    with pytest.raises(ValueError, match="size"):
        render(person(), front(), Scene(1, VISIBLE), (4, 8), rng)
    with pytest.raises(ValueError, match="n_frames"):
        walk(rng, -1)
