#!/bin/sh
# The browser the web end-to-end test drives (Testing/test_web_e2e.py): Debian's chromium, used by
# Playwright through executable_path, so `playwright install` (a download from outside the package
# archive) is never needed. Runs as root on CI; does nothing where /usr/bin/chromium already exists.
set -eu
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_browser.sh: /usr/bin/chromium is missing; run as root (apt-get install -y chromium)" >&2
    exit 1
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
