# shellcheck shell=sh disable=SC2034
# Phase preflight's read-only facts about the device, one KEY=value line each (scripts/provision/phase/preflight.ts
# reads them; this comment block is not sent). The provision session runs it in the same remote shell that later
# applies the bundle. EDGEFORGE_ROOT / EDGEFORGE_ARCH: a sandboxed device (test harness, a chroot) says where its
# root is and what it stands for; both are empty on a real device, exactly as the first-boot program reads them.
# Shell builtins wherever possible: on a small board every process costs, and fleets are large. Free disk space
# is not asked here (df would be a process): preflight.ts measures it over SFTP. The words between at signs
# are the device layout's paths, filled in quoted (scripts/device/layout.ts). SC2034: `read` names fields it
# does not use.
R="${EDGEFORGE_ROOT:-}"; R="${R%/}"
echo "root=$R"
echo "arch=${EDGEFORGE_ARCH:-$(uname -m)}"
read -r k </proc/sys/kernel/osrelease && echo "kernel=$k"
while read -r n v u; do case $n in MemTotal:) echo "memKiB=$v"; break;; esac; done </proc/meminfo
while read -r n v u; do case $n in Uid:) echo "uid=$v"; break;; esac; done </proc/self/status
if [ -d "$R/sys/module/wireguard" ] || modinfo wireguard >/dev/null 2>&1 || /sbin/modinfo wireguard >/dev/null 2>&1; then echo wireguard=yes; else echo wireguard=no; fi
command -v sudo >/dev/null 2>&1 && echo sudo=yes || echo sudo=no
command -v sha256sum >/dev/null 2>&1 && echo sha256sum=yes || echo sha256sum=no
command -v mosquitto_pub >/dev/null 2>&1 && echo mosquitto_pub=yes || echo mosquitto_pub=no
D="$R"@STATE_DIR@; F="$R"@APPLIED_FILE@
[ -d "$D" ] && echo stateDir=yes
if [ -r "$F" ]; then IFS= read -r a <"$F"; echo "applied=$a"
elif [ -e "$F" ] || { [ -d "$D" ] && [ ! -x "$D" ]; }; then echo applied=unreadable
else echo applied=none; fi
