"""Drawing one synthetic person crop with its exact mask and keypoints.

An identity is a fixed set of clothing colours and patterns (head/hair, torso, arms, legs,
shoes, bag) and body proportions; every crop of it is drawn with a new pose (walking phase,
view: front / back / left / right), position and scale, in front of the background of its
camera (colour, gradient, texture, clutter) under that camera's illumination, with optional
occluders. The drawing produces a part-label map, so the person mask is exact, and the 17 COCO
keypoints come from the same skeleton (v = 2 visible, 1 occluded but known, 0 outside the crop).

Everything is deterministic from the random generator it is given.
"""

import math
from typing import Tuple

import cv2
import numpy as np

from ..person_labels.keypoints import NUM_KEYPOINTS

__all__ = ["PersonRenderer", "sample_identity", "sample_camera"]

PALETTE = np.array(
    [
        [200, 30, 30], [30, 60, 190], [30, 140, 50], [230, 200, 40], [240, 240, 240], [25, 25, 25],
        [120, 120, 120], [130, 70, 30], [240, 130, 30], [150, 40, 150], [40, 180, 200], [230, 120, 160],
        [90, 110, 60], [20, 30, 80], [170, 150, 110], [100, 20, 30],
    ],
    dtype=np.float32,
)  # fmt: skip
SKIN = np.array([[240, 200, 170], [210, 160, 120], [170, 120, 80], [110, 70, 45]], dtype=np.float32)
HAIR = np.array([[20, 15, 10], [90, 55, 25], [200, 170, 90], [130, 130, 130], [150, 60, 20]], dtype=np.float32)

# Part ids in the label map; 0 is background.
HEAD, HAIR_PART, TORSO, ARM_L, ARM_R, HAND_L, HAND_R, LEG_L, LEG_R, SHOE_L, SHOE_R, BAG = range(1, 13)


def sample_identity(rng: np.random.Generator) -> dict:
    """Clothing colours/patterns and body proportions of one person."""
    top, second = rng.choice(len(PALETTE), size=2, replace=False)
    return {
        "skin": SKIN[rng.integers(len(SKIN))],
        "hair": HAIR[rng.integers(len(HAIR))],
        "long_hair": bool(rng.random() < 0.3),
        "top": PALETTE[top],
        "top_second": PALETTE[second],
        "top_pattern": str(rng.choice(["solid", "solid", "hstripes", "vstripes", "twotone"])),
        "long_sleeves": bool(rng.random() < 0.5),
        "bottom": PALETTE[rng.integers(len(PALETTE))],
        "bottom_type": str(rng.choice(["pants", "pants", "shorts", "skirt"])),
        "shoes": PALETTE[rng.integers(len(PALETTE))],
        "bag": str(rng.choice(["none", "none", "backpack", "handbag"])),
        "bag_color": PALETTE[rng.integers(len(PALETTE))],
        "height": float(rng.uniform(0.82, 1.0)),
        "build": float(rng.uniform(0.85, 1.15)),
    }


def sample_camera(rng: np.random.Generator) -> dict:
    """Background and illumination of one camera."""
    return {
        "bg": rng.uniform(40, 220, size=3).astype(np.float32),
        "bg2": rng.uniform(40, 220, size=3).astype(np.float32),
        "texture": float(rng.uniform(4, 18)),
        "gain": float(rng.uniform(0.7, 1.2)),
        "tint": rng.uniform(0.85, 1.15, size=3).astype(np.float32),
        "clutter": int(rng.integers(1, 5)),
        "blur": bool(rng.random() < 0.4),
    }


class PersonRenderer:
    """Draws one crop: ``render(identity, camera, rng)`` -> (image HxWx3 uint8 RGB, mask HxW uint8,
    keypoints (17, 3) float [x, y, v] in pixel coordinates of the crop)."""

    def __init__(self, height: int = 128, width: int = 64, occlusion_prob: float = 0.2):
        self.h, self.w = height, width
        self.occlusion_prob = occlusion_prob

    # -- skeleton -------------------------------------------------------------------------
    def _skeleton(self, identity, rng) -> Tuple[np.ndarray, str, np.ndarray]:
        h, w = self.h, self.w
        view = str(rng.choice(["front", "back", "left", "right"]))
        phase = rng.uniform(0, 2 * math.pi)
        ph = (h - 10) * identity["height"] * rng.uniform(0.93, 1.0)
        feet_y = h - 3 - rng.uniform(0, 5)
        cx = w / 2 + rng.normal(0, 2.0)
        top = feet_y - ph
        side = view in ("left", "right")
        face_dir = {"left": -1.0, "right": 1.0}.get(view, 0.0)
        sw = 0.13 * ph * identity["build"] * (0.35 if side else 1.0)
        hw = 0.085 * ph * identity["build"] * (0.4 if side else 1.0)
        swing = math.radians(28) * math.sin(phase) * (1.0 if side else 0.25)
        arm_swing = -math.radians(22) * math.sin(phase) * (1.0 if side else 0.3)
        # person's left is at larger x when facing the camera, smaller x from the back
        lr = {"front": 1.0, "back": -1.0, "left": 1.0, "right": -1.0}[view]
        k = np.zeros((NUM_KEYPOINTS, 3))
        head_c = np.array([cx + face_dir * 0.01 * ph, top + 0.065 * ph])
        r = 0.065 * ph
        k[0, :2] = head_c + [face_dir * 0.7 * r, 0.15 * r]
        for side_sign, eye, ear in ((1.0, 1, 3), (-1.0, 2, 4)):
            k[eye, :2] = head_c + [face_dir * 0.55 * r + (0 if side else lr * side_sign * 0.4 * r), -0.2 * r]
            k[ear, :2] = head_c + [(-face_dir * 0.2 * r) if side else lr * side_sign * 0.8 * r, 0.0]
        sh_y, hip_y = top + 0.2 * ph, top + 0.52 * ph
        for sign, (s_i, e_i, w_i, h_i, k_i, a_i) in ((1.0, (5, 7, 9, 11, 13, 15)), (-1.0, (6, 8, 10, 12, 14, 16))):
            x_off = lr * sign
            k[s_i, :2] = [cx + x_off * sw, sh_y]
            k[h_i, :2] = [cx + x_off * hw, hip_y]
            a = arm_swing * sign * (face_dir if side else 1.0)
            k[e_i, :2] = k[s_i, :2] + 0.17 * ph * np.array([math.sin(a) + x_off * (0 if side else 0.12), math.cos(a)])
            k[w_i, :2] = k[e_i, :2] + 0.15 * ph * np.array([math.sin(a * 1.3) + x_off * (0 if side else 0.05), math.cos(a * 1.3)])
            lg = swing * sign * (face_dir if side else 1.0)
            k[k_i, :2] = k[h_i, :2] + 0.24 * ph * np.array([math.sin(lg), math.cos(lg)])
            k[a_i, :2] = k[k_i, :2] + 0.22 * ph * np.array([math.sin(lg * 0.8), math.cos(lg * 0.8)])
        k[:, :2] = np.floor(k[:, :2]) + 0.5  # pixel centres
        k[:, 2] = 2
        if view == "back":
            k[[0, 1, 2], 2] = 1
        elif side:
            far = 1 if view == "right" else 2  # the far side: left side when facing right
            far_ids = [3, 5, 7, 9, 11, 13, 15] if far == 1 else [4, 6, 8, 10, 12, 14, 16]
            far_eye = 1 if far == 1 else 2
            k[far_ids + [far_eye], 2] = 1
        return k, view, np.array([ph, r, sw, hw])

    # -- drawing --------------------------------------------------------------------------
    def _draw_parts(self, identity, k, view, dims) -> np.ndarray:
        ph, r, sw, hw = dims
        labels = np.zeros((self.h, self.w), dtype=np.uint8)
        pt = lambda i: (int(k[i, 0]), int(k[i, 1]))  # noqa: E731
        limb = max(2, int(round(0.045 * ph * identity["build"])))
        leg = max(3, int(round(0.06 * ph * identity["build"])))
        far_left = view in ("right", "back")  # drawn first = behind

        def draw_arm(s, e, wr, part, hand):
            cv2.line(labels, pt(s), pt(e), part, limb)
            cv2.line(labels, pt(e), pt(wr), part, limb)
            cv2.circle(labels, pt(wr), max(1, limb // 2 + 1), hand, -1)

        def draw_leg(hp, kn, an, part, shoe):
            cv2.line(labels, pt(hp), pt(kn), part, leg)
            cv2.line(labels, pt(kn), pt(an), part, leg)
            cv2.circle(labels, pt(an), max(2, leg // 2 + 1), shoe, -1)

        left = ((5, 7, 9, ARM_L, HAND_L), (11, 13, 15, LEG_L, SHOE_L))
        right = ((6, 8, 10, ARM_R, HAND_R), (12, 14, 16, LEG_R, SHOE_R))
        back_side, front_side = (left, right) if far_left else (right, left)
        if identity["bag"] == "backpack" and view != "back":
            self._draw_bag(labels, k, dims, view, behind=True)
        draw_arm(*back_side[0])
        draw_leg(*back_side[1])
        draw_leg(*front_side[1])
        torso = np.array([pt(5), pt(6), (int(k[12, 0]), int(k[12, 1])), (int(k[11, 0]), int(k[11, 1]))], dtype=np.int32)
        hull = cv2.convexHull(np.concatenate([torso, torso + [0, 0]]))
        cv2.fillConvexPoly(labels, hull, TORSO)
        cv2.line(labels, pt(5), pt(6), TORSO, limb + 1)
        if identity["bottom_type"] == "skirt":
            skirt = np.array(
                [pt(11), pt(12), (int(k[14, 0]), int(k[12, 1] + 0.18 * ph)), (int(k[13, 0]), int(k[11, 1] + 0.18 * ph))], dtype=np.int32
            )
            cv2.fillConvexPoly(labels, cv2.convexHull(skirt), LEG_L)
        head_c = (int(round(k[0, 0] - (k[0, 0] - (k[3, 0] + k[4, 0]) / 2) * 0.3)), int(k[3, 1]))
        if identity["long_hair"]:  # hanging behind the head and the neck
            cv2.rectangle(labels, (head_c[0] - int(r), head_c[1]), (head_c[0] + int(r), int(head_c[1] + 1.8 * r)), HAIR_PART, -1)
        neck_top = (int((k[5, 0] + k[6, 0]) / 2), int(k[5, 1] - 0.05 * ph))
        cv2.line(labels, neck_top, (neck_top[0], int(k[5, 1])), HEAD, max(2, limb))
        cv2.circle(labels, head_c, int(round(r)), HEAD, -1)
        hair_pts = cv2.ellipse2Poly(head_c, (int(round(r)), int(round(r))), 0, 180, 360, 20)
        if view == "back":
            cv2.circle(labels, head_c, int(round(r)), HAIR_PART, -1)
        else:
            cv2.fillConvexPoly(labels, hair_pts, HAIR_PART)
        draw_arm(*front_side[0])
        if identity["bag"] == "backpack" and view == "back":
            self._draw_bag(labels, k, dims, view, behind=False)
        if identity["bag"] == "handbag":
            wr = k[9] if not far_left else k[10]
            cv2.rectangle(labels, (int(wr[0] - 0.04 * ph), int(wr[1])), (int(wr[0] + 0.04 * ph), int(wr[1] + 0.08 * ph)), BAG, -1)
        # face keypoints sit on the head: redraw them as head pixels where hair covered them
        for i in (0, 1, 2, 3, 4):
            if k[i, 2] == 2:
                labels[int(k[i, 1]), int(k[i, 0])] = labels[int(k[i, 1]), int(k[i, 0])] or HEAD
        return labels

    @staticmethod
    def _draw_bag(labels, k, dims, view, behind):
        ph = dims[0]
        cx = (k[5, 0] + k[6, 0] + k[11, 0] + k[12, 0]) / 4
        offset = {"left": 0.09, "right": -0.09}.get(view, 0.0) * ph
        x0, x1 = int(cx + offset - 0.08 * ph), int(cx + offset + 0.08 * ph)
        y0, y1 = int(k[5, 1] + 0.02 * ph), int(k[5, 1] + 0.22 * ph)
        cv2.rectangle(labels, (x0, y0), (x1, y1), BAG, -1)

    def _colorize(self, identity, labels, k, rng) -> np.ndarray:
        colors = np.zeros((13, 3), dtype=np.float32)
        colors[HEAD] = identity["skin"]
        colors[HAIR_PART] = identity["hair"]
        colors[TORSO] = identity["top"]
        sleeve = identity["top"] if identity["long_sleeves"] else identity["skin"]
        colors[ARM_L] = colors[ARM_R] = sleeve
        colors[HAND_L] = colors[HAND_R] = identity["skin"]
        colors[LEG_L] = colors[LEG_R] = identity["bottom"]
        colors[SHOE_L] = colors[SHOE_R] = identity["shoes"]
        colors[BAG] = identity["bag_color"]
        image = colors[labels]
        ys, xs = np.mgrid[0 : self.h, 0 : self.w]
        torso = labels == TORSO
        pattern = identity["top_pattern"]
        if pattern == "hstripes":
            image[torso & ((ys // 4) % 2 == 0)] = identity["top_second"]
        elif pattern == "vstripes":
            image[torso & ((xs // 3) % 2 == 0)] = identity["top_second"]
        elif pattern == "twotone":
            image[torso & (ys > (k[5, 1] + k[11, 1]) / 2)] = identity["top_second"]
        if identity["bottom_type"] == "shorts":
            knee_y = (k[13, 1] + k[14, 1]) / 2
            legs = (labels == LEG_L) | (labels == LEG_R)
            image[legs & (ys > knee_y)] = identity["skin"]
        # soft shading: lighter at the top, darker at the bottom and the sides of the body
        shade = 1.1 - 0.25 * (ys / self.h) - 0.1 * np.abs(xs - k[:, 0].mean()) / (self.w / 2)
        return image * shade[..., None] * rng.uniform(0.9, 1.1)

    def _background(self, camera, rng) -> np.ndarray:
        t = np.linspace(0, 1, self.h, dtype=np.float32)[:, None, None]
        bg = camera["bg"] * (1 - t) + camera["bg2"] * t
        bg = np.broadcast_to(bg, (self.h, self.w, 3)).copy()
        noise = cv2.resize(rng.normal(0, 1, (self.h // 8, self.w // 8, 3)).astype(np.float32), (self.w, self.h))
        bg += camera["texture"] * noise * 2 + rng.normal(0, camera["texture"] / 3, bg.shape)
        for _ in range(camera["clutter"] + int(rng.integers(0, 3))):
            color = PALETTE[rng.integers(len(PALETTE))] * rng.uniform(0.6, 1.0)
            x0, y0 = int(rng.integers(-10, self.w)), int(rng.integers(-10, self.h))
            x1, y1 = x0 + int(rng.integers(5, 30)), y0 + int(rng.integers(5, 50))
            if rng.random() < 0.5:
                cv2.rectangle(bg, (x0, y0), (x1, y1), color.tolist(), -1)
            else:
                cv2.ellipse(bg, ((x0 + x1) // 2, (y0 + y1) // 2), ((x1 - x0) // 2, (y1 - y0) // 2), 0, 0, 360, color.tolist(), -1)
        return bg

    def render(self, identity: dict, camera: dict, rng: np.random.Generator):
        k, view, dims = self._skeleton(identity, rng)
        labels = self._draw_parts(identity, k, view, dims)
        person = self._colorize(identity, labels, k, rng)
        image = self._background(camera, rng)
        mask = labels > 0
        image[mask] = person[mask]
        if rng.random() < self.occlusion_prob:
            image, mask = self._occlude(image, mask, k, rng)
        inside = (k[:, 0] >= 0) & (k[:, 0] < self.w) & (k[:, 1] >= 0) & (k[:, 1] < self.h)
        k[~inside, 2] = 0
        for i in np.nonzero(inside & (k[:, 2] == 2))[0]:
            if not mask[int(k[i, 1]), int(k[i, 0])]:
                k[i, 2] = 1  # covered (self-occlusion or occluder)
        image = image * camera["gain"] * camera["tint"] * rng.uniform(0.85, 1.15)
        if camera["blur"]:
            image = cv2.GaussianBlur(image, (3, 3), 0)
        image += rng.normal(0, 3.0, image.shape)
        return np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8), k

    def _occlude(self, image, mask, k, rng):
        """Cover the lower or a side part of the crop with an object of a clutter colour."""
        color = PALETTE[rng.integers(len(PALETTE))] * rng.uniform(0.5, 0.9)
        if rng.random() < 0.6:
            y0 = int(rng.uniform(0.55, 0.8) * self.h)
            box = (0, y0, self.w, self.h)
        else:
            x_width = int(rng.uniform(0.3, 0.45) * self.w)
            box = (0, 0, x_width, self.h) if rng.random() < 0.5 else (self.w - x_width, 0, self.w, self.h)
        x0, y0, x1, y1 = box
        image[y0:y1, x0:x1] = color + rng.normal(0, 5, (y1 - y0, x1 - x0, 3))
        mask = mask.copy()
        mask[y0:y1, x0:x1] = False
        return image, mask
