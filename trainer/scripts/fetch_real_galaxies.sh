#!/usr/bin/env bash
# The real-galaxy catalogue of trainer/simulation/real_galaxies.py: 6,664 Galaxy Zoo 1 galaxies
# (SDSS gri colour JPEGs, 423 x 423 px) with their Galaxy Zoo 1 classes, as committed in
# github.com/Eggochi/Proyecto_Galaxias at 5226e5e (later commits removed them).
#
# The images are SDSS imaging (acknowledge SDSS as its data policy asks); the classes are Galaxy
# Zoo 1's (Lintott et al. 2008, 2011). The repository states no licence of its own: lenscast
# redistributes none of it, and this command rebuilds the catalogue from the source.
#
# Usage: trainer/scripts/fetch_real_galaxies.sh DIR
# Environment: REPO (https://github.com/Eggochi/Proyecto_Galaxias) a clone's address or path.
set -euo pipefail
out=${1:?usage: fetch_real_galaxies.sh DIR}
repo=${REPO:-https://github.com/Eggochi/Proyecto_Galaxias}
commit=5226e5e
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet --bare "$repo" "$work/repo.git"
mkdir -p "$out/img"
git --git-dir="$work/repo.git" archive "$commit" smallGZ1/Imagenes smallGZ1/smallCSV_class.csv \
  | tar -x -C "$work"
mv "$work"/smallGZ1/Imagenes/*.jpeg "$out/img/"
mv "$work/smallGZ1/smallCSV_class.csv" "$out/"
echo "$(ls "$out/img" | wc -l) images and their classes in $out"
