#!/usr/bin/env bash
# A kernel tree the reproducers' selftests build in, from the distribution's kernel source package
# (Debian's linux-source-6.12): only what `make headers` and tools/testing/selftests/kvm need is
# unpacked, then `make headers`. Prints the tree's path on the last line.
# Usage: scripts/kernel_tree.sh DIR [VERSION]   (VERSION defaults to 6.12, the oldest the selftests target)
set -euo pipefail
dir=${1:?usage: scripts/kernel_tree.sh DIR [VERSION]}
ver=${2:-6.12}
tarball=/usr/src/linux-source-$ver.tar.xz
if [ ! -f "$tarball" ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo=sudo
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "linux-source-$ver" make gcc libc6-dev xz-utils; } >/dev/null ||
    { echo "kernel_tree: cannot install linux-source-$ver (apt-get)" >&2; exit 2; }
fi
mkdir -p "$dir"
top=linux-source-$ver
# The top Makefile and Kbuild scripts, the uapi headers (include/, arch/x86/) and the selftests (tools/).
tar -xJf "$tarball" -C "$dir" --wildcards "$top/Makefile" "$top/Kbuild" "$top/scripts/*" "$top/include/*" \
  "$top/arch/Kconfig" "$top/arch/x86/*" "$top/tools/*" "$top/usr/*"
make -s -C "$dir/$top" headers -j"$(nproc)" >/dev/null
echo "$dir/$top"
