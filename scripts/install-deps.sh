#!/usr/bin/env bash
# Installs every Debian package spillway needs to build and test (Debian 12 / Ubuntu 24.04).
# CUDA is optional and not installed here: with nvcc in /usr/local/cuda the CUDA parts build too.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libabsl-dev nlohmann-json3-dev liburing-dev zlib1g-dev libpcre2-dev
  libopenmpi-dev openmpi-bin
  libgtest-dev libgmock-dev
)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
