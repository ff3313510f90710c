"""Write a COCO-train2017-sized instances file (about 118K images, 860K boxes, 80 classes with COCO's
class frequencies), generated with numpy so the benchmarks need no download.

    python benchmarks/coco_like.py --out benchmarks/out/coco_like_train2017.json [--images 118287]

Each class's instances are spread over images the way COCO's are (one to a few per image, person
many), boxes span COCO's range of sizes (many under 5% of the image), and every annotation carries a
polygon segmentation so that the file's size and parse cost are close to the real one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import orjson

# COCO train2017 instance counts per category (name, supercategory, instances).
COCO_CLASSES = [
    ("person", "person", 262465), ("bicycle", "vehicle", 7113), ("car", "vehicle", 43867),
    ("motorcycle", "vehicle", 8725), ("airplane", "vehicle", 5135), ("bus", "vehicle", 6069),
    ("train", "vehicle", 4571), ("truck", "vehicle", 9973), ("boat", "vehicle", 10759),
    ("traffic light", "outdoor", 12884), ("fire hydrant", "outdoor", 1865), ("stop sign", "outdoor", 1983),
    ("parking meter", "outdoor", 1285), ("bench", "outdoor", 9838), ("bird", "animal", 10806),
    ("cat", "animal", 4768), ("dog", "animal", 5508), ("horse", "animal", 6587), ("sheep", "animal", 9509),
    ("cow", "animal", 8147), ("elephant", "animal", 5513), ("bear", "animal", 1294), ("zebra", "animal", 5303),
    ("giraffe", "animal", 5131), ("backpack", "accessory", 8720), ("umbrella", "accessory", 11431),
    ("handbag", "accessory", 12354), ("tie", "accessory", 6496), ("suitcase", "accessory", 6192),
    ("frisbee", "sports", 2682), ("skis", "sports", 6646), ("snowboard", "sports", 2685),
    ("sports ball", "sports", 6347), ("kite", "sports", 9076), ("baseball bat", "sports", 3276),
    ("baseball glove", "sports", 3747), ("skateboard", "sports", 5543), ("surfboard", "sports", 6126),
    ("tennis racket", "sports", 4812), ("bottle", "kitchen", 24342), ("wine glass", "kitchen", 7913),
    ("cup", "kitchen", 20650), ("fork", "kitchen", 5479), ("knife", "kitchen", 7770), ("spoon", "kitchen", 6165),
    ("bowl", "kitchen", 14358), ("banana", "food", 9458), ("apple", "food", 5851), ("sandwich", "food", 4373),
    ("orange", "food", 6399), ("broccoli", "food", 7308), ("carrot", "food", 7852), ("hot dog", "food", 2918),
    ("pizza", "food", 5821), ("donut", "food", 7179), ("cake", "food", 6353), ("chair", "furniture", 38491),
    ("couch", "furniture", 5779), ("potted plant", "furniture", 8652), ("bed", "furniture", 4192),
    ("dining table", "furniture", 15714), ("toilet", "furniture", 4157), ("tv", "electronic", 5805),
    ("laptop", "electronic", 4970), ("mouse", "electronic", 2262), ("remote", "electronic", 5703),
    ("keyboard", "electronic", 2855), ("cell phone", "electronic", 6434), ("microwave", "appliance", 1673),
    ("oven", "appliance", 3334), ("toaster", "appliance", 225), ("sink", "appliance", 5610),
    ("refrigerator", "appliance", 2637), ("book", "indoor", 24715), ("clock", "indoor", 6334),
    ("vase", "indoor", 6613), ("scissors", "indoor", 1481), ("teddy bear", "indoor", 4793),
    ("hair drier", "indoor", 198), ("toothbrush", "indoor", 1954),
]
# COCO's 80 category ids are not contiguous (1..90 with gaps).
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32,
            33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
            60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]
TRAIN2017_IMAGES = 118287


def make_coco_like(num_images: int = TRAIN2017_IMAGES, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    scale = num_images / TRAIN2017_IMAGES
    portrait = rng.random(num_images) < 0.25
    widths = np.where(portrait, 480, 640)
    heights = np.where(portrait, 640, 480)
    box_img, box_cls = [], []
    for c, (_, _, count) in enumerate(COCO_CLASSES):
        n = max(1, round(count * scale))
        # Instances per image: geometric, heavier for frequent classes (person: ~4 per image in COCO).
        mean = 1.0 + 3.0 * (count / 262465) ** 0.5
        per = rng.geometric(1.0 / mean, size=n)
        per = per[np.cumsum(per) <= n] if per.sum() > n else per
        imgs = rng.choice(num_images, size=min(len(per), num_images), replace=False)
        box_img.append(np.repeat(imgs, per[: len(imgs)]))
        box_cls.append(np.full(int(per[: len(imgs)].sum()), c))
    box_img = np.concatenate(box_img)
    box_cls = np.concatenate(box_cls)
    order = np.argsort(box_img, kind="stable")
    box_img, box_cls = box_img[order], box_cls[order]
    n_box = len(box_img)
    # Box area fraction log-uniform over COCO's range; about a third fall under 5%.
    frac = np.exp(rng.uniform(np.log(2e-4), np.log(0.8), size=n_box))
    aspect = np.exp(rng.uniform(-1.0, 1.0, size=n_box))
    W, H = widths[box_img], heights[box_img]
    w = np.minimum(np.sqrt(frac * W * H * aspect), W - 1)
    h = np.minimum(frac * W * H / w, H - 1)
    x = rng.uniform(0, 1, n_box) * (W - w)
    y = rng.uniform(0, 1, n_box) * (H - h)
    crowd = rng.random(n_box) < 0.009
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    images = [
        {"id": int(i + 1), "file_name": f"{i + 1:012d}.jpg", "width": int(widths[i]), "height": int(heights[i]),
         "license": 1}
        for i in range(num_images)
    ]
    annotations = []
    for k in range(n_box):
        cx, cy, rw, rh = x[k] + w[k] / 2, y[k] + h[k] / 2, w[k] / 2, h[k] / 2
        poly = np.round(np.stack([cx + rw * np.cos(angles), cy + rh * np.sin(angles)], 1).ravel(), 2).tolist()
        annotations.append({
            "id": k + 1, "image_id": int(box_img[k] + 1), "category_id": COCO_IDS[box_cls[k]],
            "bbox": [round(float(x[k]), 2), round(float(y[k]), 2), round(float(w[k]), 2), round(float(h[k]), 2)],
            "area": round(float(w[k] * h[k] * 0.7), 2), "iscrowd": int(crowd[k]), "segmentation": [poly],
        })
    categories = [{"id": COCO_IDS[c], "name": n, "supercategory": s} for c, (n, s, _) in enumerate(COCO_CLASSES)]
    return {"info": {"description": "COCO-train2017-sized synthetic annotations"}, "licenses": [],
            "images": images, "annotations": annotations, "categories": categories}


def write_coco_like(path: Path, num_images: int = TRAIN2017_IMAGES, seed: int = 0) -> Path:
    """Write the file once; later calls reuse it."""
    path = Path(path)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(make_coco_like(num_images, seed)))
    tmp.replace(path)
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/coco_like_train2017.json"))
    ap.add_argument("--images", type=int, default=TRAIN2017_IMAGES)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    p = write_coco_like(args.out, args.images, args.seed)
    print(f"{p} ({p.stat().st_size / 1e6:.0f} MB)")
