#!/usr/bin/env bash
# The attack table of issue 4 (Ghorbani et al.'s setting): the real SqueezeNet v1.0 on the
# photos in ../shared/images, attribution methods gradient / ig / deeplift, epsilon 1, 2, 4, 8
# pixels, P = 300 sign steps of alpha = 0.5, top-1000 intersection; random sign vs top-k vs
# mass-center attacks. Writes one `fragile attack` run per (method, epsilon, attack) under OUT
# (all images attacked together as one batch, each independently) and the table as Markdown.
#
# The full table is heavy on a CPU (every iteration differentiates the map: a double backward
# through SqueezeNet; IG does that for M points): run a smaller one with the options below.
# Runs whose result.json exists are reused, so an interrupted table resumes where it stopped;
# a result.json made with other settings (alpha, k, M, reference, model, images, an older
# fragile's random streams) stops the script, naming the difference.
#
# Usage: tools/run_attack_table.sh [options]
#   -p P          iterations per attack               (default 300)
#   -e "E ..."    epsilons in pixels                  (default "1 2 4 8")
#   -m "M ..."    methods                             (default "gradient ig deeplift")
#   -a "A ..."    attacks                             (default "random topk center")
#   -i "I ..."    images                              (default: every photo in ../shared/images)
#   -s STEP       alpha in pixels                     (default 0.5)
#   -k K          top-k                               (default 1000)
#   -g M          IG points                           (default 100, the paper's)
#   -b B          IG points per chunk (--ig-batch)    (default: fragile's; B >= M differentiates
#                 the map in one pass instead of recomputing it chunk by chunk: faster, but
#                 memory grows with B; the results agree to rounding, so runs are reused
#                 whatever B made them)
#   -r REF        IG / DeepLIFT reference             (default zero: the ImageNet mean colour
#                 for SqueezeNet, Ghorbani et al.'s; or image-mean, or a file)
#   -M MODEL      model                               (default ../shared/models/squeezenet1.0.onnx)
#   -o FILE       Markdown output                     (default docs/attack_table.md)
#   -O DIR        run folder                          (default out/attack_table)
#   -F FRAGILE    the fragile binary                  (default build/bin/fragile)
#   -d DEVICE     cpu or cuda                         (default cpu)
#   -t            table only: run nothing; write the table from the finished runs, leaving
#                 out (method, epsilon) groups with a run missing, and list those
# Example, a quick look: tools/run_attack_table.sh -p 20 -e 8 -m gradient -i ../shared/images/chelsea.png
set -euo pipefail
cd "$(dirname "$0")/.."

ITERS=300
EPSILONS="1 2 4 8"
METHODS="gradient ig deeplift"
ATTACKS="random topk center"
IMAGES=""
STEP=0.5
TOPK=1000
IG_STEPS=100
IG_BATCH=""
REFERENCE=zero
MODEL=../shared/models/squeezenet1.0.onnx
TABLE=docs/attack_table.md
OUT=out/attack_table
FRAGILE=${FRAGILE:-build/bin/fragile}
DEVICE=cpu
TABLE_ONLY=0

while getopts "p:e:m:a:i:s:k:g:b:r:M:o:O:F:d:th" opt; do
  case "$opt" in
    p) ITERS=$OPTARG ;;
    e) EPSILONS=$OPTARG ;;
    m) METHODS=$OPTARG ;;
    a) ATTACKS=$OPTARG ;;
    i) IMAGES=$OPTARG ;;
    s) STEP=$OPTARG ;;
    k) TOPK=$OPTARG ;;
    g) IG_STEPS=$OPTARG ;;
    b) IG_BATCH=$OPTARG ;;
    r) REFERENCE=$OPTARG ;;
    M) MODEL=$OPTARG ;;
    o) TABLE=$OPTARG ;;
    O) OUT=$OPTARG ;;
    F) FRAGILE=$OPTARG ;;
    d) DEVICE=$OPTARG ;;
    t) TABLE_ONLY=1 ;;
    h) sed -n '2,36p' "$0"; exit 0 ;;
    *) sed -n '2,36p' "$0" >&2; exit 2 ;;
  esac
done

if [ -z "$IMAGES" ]; then
  IMAGES=$(ls ../shared/images/*.png ../shared/images/*.jpg 2>/dev/null | sort | tr '\n' ' ')
fi
[ "$TABLE_ONLY" = 1 ] || [ -x "$FRAGILE" ] ||
  { echo "run_attack_table: $FRAGILE not found (build first, or -F)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "run_attack_table: model $MODEL not found" >&2; exit 1; }
[ -n "$IMAGES" ] || { echo "run_attack_table: no images" >&2; exit 1; }

# Runs with another reference get their own folders (the default's names stay as they were).
REF_TAG=""
[ "$REFERENCE" = zero ] || REF_TAG="_ref-$(basename "$REFERENCE" | tr -c 'A-Za-z0-9.\n-' _)"

image_args=()
for img in $IMAGES; do image_args+=(--image "$img"); done
batch_args=()
[ -z "$IG_BATCH" ] || batch_args=(--ig-batch "$IG_BATCH")
n_images=$(echo $IMAGES | wc -w)

# A finished run is reused only when it was made with this table's settings: the folder name
# holds method, epsilon, attack, P and reference, but not alpha, k, M, the model, the images or
# how random directions were drawn. Exits naming the first difference.
check_reusable() {  # RESULT_JSON METHOD EPS ATTACK
  /usr/bin/python3 - "$@" "$ITERS" "$STEP" "$TOPK" "$IG_STEPS" "$REFERENCE" "$MODEL" \
    "$IMAGES" <<'PY'
import json, os, sys
path, method, eps, attack, iters, step, topk, ig_steps, reference, model, images = sys.argv[1:]
with open(path) as f:
    r = json.load(f)
want = {"method": method, "attack": attack, "epsilon": float(eps), "iters": int(iters),
        "step": float(step), "k": int(topk)}
if method in ("ig", "deeplift"):
    want["reference"] = reference
if method == "ig":
    want["ig_steps"] = int(ig_steps)
problems = []
for key, value in want.items():
    if key not in r:
        problems.append(f"it records no {key} (made by an older fragile)")
    elif r[key] != value:
        problems.append(f"{key} {r[key]!r} instead of {value!r}")
if os.path.basename(r.get("model", "")) != os.path.basename(model):
    problems.append(f"model {r.get('model')!r} instead of {model!r}")
ran = [os.path.basename(i["image"]) for i in r.get("images", [])]
if ran != [os.path.basename(i) for i in images.split()]:
    problems.append(f"images {ran} instead of {[os.path.basename(i) for i in images.split()]}")
if attack == "random" and "random_streams" not in r:
    problems.append("its random directions came from one stream per batch (fragile before "
                    "per-image streams)")
if problems:
    sys.exit(f"run_attack_table: {path} was made with other settings: " + "; ".join(problems)
             + ". Move it away (or pass -O for another run folder) to run it again.")
PY
}

for method in $METHODS; do
  for eps in $EPSILONS; do
    for attack in $ATTACKS; do
      dir="$OUT/${method}_eps${eps}_${attack}_p${ITERS}${REF_TAG}"
      if [ -f "$dir/result.json" ]; then
        check_reusable "$dir/result.json" "$method" "$eps" "$attack"
        echo "== $method eps $eps $attack: reusing $dir/result.json"
        continue
      fi
      [ "$TABLE_ONLY" = 1 ] && continue
      echo "== $method eps $eps $attack (P $ITERS, $n_images images)"
      started=$SECONDS
      "$FRAGILE" attack --model "$MODEL" "${image_args[@]}" --method "$method" \
        --attack "$attack" --epsilon "$eps" --iters "$ITERS" --step "$STEP" --k "$TOPK" \
        --ig-steps "$IG_STEPS" ${batch_args[@]+"${batch_args[@]}"} --reference "$REFERENCE" \
        --batch "$n_images" --device "$DEVICE" --out "$dir"
      echo "   $((SECONDS - started)) s"
    done
  done
done

# The table: one row per (method, epsilon, image), then the means per (method, epsilon).
/usr/bin/python3 - "$OUT" "$TABLE" "$ITERS" "$STEP" "$TOPK" "$MODEL" "$METHODS" "$EPSILONS" \
  "$ATTACKS" "$REFERENCE" "$REF_TAG" <<'PY'
import json, os, sys
out, table, iters, step, topk, model = sys.argv[1:7]
methods, epsilons, attacks = (s.split() for s in sys.argv[7:10])
reference, ref_tag = sys.argv[10], sys.argv[11]

def load(method, eps, attack):
    path = os.path.join(out, f"{method}_eps{eps}_{attack}_p{iters}{ref_tag}", "result.json")
    with open(path) as f:
        return json.load(f)

def fmt(r, key):
    if not r["success"]:
        return "fail"
    return f"{r[key]:.3f}" if key != "center_shift" else f"{r[key]:.1f}"

lines = [
    "# Attack table: SqueezeNet v1.0, Ghorbani et al.'s attacks",
    "",
    f"Written by `tools/run_attack_table.sh` (model `{os.path.basename(model)}`, P = {iters}, "
    f"alpha = {step} px, k = {topk}; epsilon in pixels 0..255). Each cell is the best "
    "label-keeping iterate judged on the original ReLU network; directions come from the "
    "softplus(beta = 1) surrogate (DeepLIFT: the network itself). IG and DeepLIFT reference: "
    f"`{reference}`"
    + (" (the preprocessed zero: the ImageNet mean colour, Ghorbani et al.'s 'channel-wise mean "
       "image')" if reference == "zero" else "")
    + ". `fail`: no iterate kept the "
    "label. Lower top-k intersection / Spearman and larger centre shift = a more fragile map.",
    "",
]
header = "| method | eps | image | label kept | " + " | ".join(
    f"top-{topk} ∩ {a}" for a in attacks) + " | " + " | ".join(
    f"spearman {a}" for a in attacks) + " | " + " | ".join(
    f"centre shift {a} (px)" for a in attacks) + " |"
lines += [header, "|" + "---|" * (header.count("|") - 1)]
summary = []
missing = []
for method in methods:
    for eps in epsilons:
        absent = [a for a in attacks if not os.path.exists(os.path.join(
            out, f"{method}_eps{eps}_{a}_p{iters}{ref_tag}", "result.json"))]
        if absent:
            missing.append(f"{method} eps {eps} ({', '.join(absent)})")
            continue
        runs = {a: load(method, eps, a) for a in attacks}
        n = len(runs[attacks[0]]["images"])
        means = {a: {"topk_intersection": [], "spearman": [], "center_shift": []} for a in attacks}
        kept_all = True
        for i in range(n):
            rs = {a: runs[a]["images"][i] for a in attacks}
            kept = all(r["success"] and r["label_after"] == r["label_before"] for r in rs.values())
            kept_all = kept_all and kept
            name = os.path.basename(rs[attacks[0]]["image"])
            cells = [fmt(rs[a], "topk_intersection") for a in attacks]
            cells += [fmt(rs[a], "spearman") for a in attacks]
            cells += [fmt(rs[a], "center_shift") for a in attacks]
            lines.append(f"| {method} | {eps} | {name} | {'yes' if kept else 'NO'} | "
                         + " | ".join(cells) + " |")
            for a in attacks:
                if rs[a]["success"]:
                    for key in means[a]:
                        means[a][key].append(rs[a][key])
        avg = {a: {k: (sum(v) / len(v) if v else float("nan")) for k, v in means[a].items()}
               for a in attacks}
        summary.append((method, eps, kept_all, avg))

lines += ["", "## Means over images", ""]
head = "| method | eps | every label kept | " + " | ".join(
    f"top-{topk} ∩ {a}" for a in attacks) + " | " + " | ".join(
    f"centre shift {a}" for a in attacks) + " | paper's ordering |"
lines += [head, "|" + "---|" * (head.count("|") - 1)]
for method, eps, kept_all, avg in summary:
    order = ""
    if "random" in attacks:
        r = avg["random"]["topk_intersection"]
        checks = [avg[a]["topk_intersection"] < r for a in ("topk", "center") if a in attacks]
        order = "yes" if checks and all(checks) else ("no" if checks else "")
    lines.append(f"| {method} | {eps} | {'yes' if kept_all else 'NO'} | "
                 + " | ".join(f"{avg[a]['topk_intersection']:.3f}" for a in attacks) + " | "
                 + " | ".join(f"{avg[a]['center_shift']:.1f}" for a in attacks)
                 + f" | {order} |")
lines += ["", "\"paper's ordering\": top-k and mass-center attacks reach a lower top-k "
          "intersection than random sign noise of the same size.", ""]
if missing:
    lines += ["Not run yet, left out: " + "; ".join(missing) + ".", ""]
    print("run_attack_table: left out (runs missing): " + "; ".join(missing), file=sys.stderr)
os.makedirs(os.path.dirname(table) or ".", exist_ok=True)
with open(table, "w") as f:
    f.write("\n".join(lines))
print(f"wrote {table}")
PY
