# shellcheck shell=sh
# edgeforge OS updates: carry this device from the running root into a freshly written slot (EF_OS_CARRY, from
# scripts/device/layout.ts OS_CARRY: "how:path[:prefix,...]" entries). After os-lib.sh.

# os_merge_accounts OLD NEW: NEW keeps its lines (a new release may add system users); the users and groups only
# OLD has are added in OLD's order; a group in both gets the union of its members; root's shadow line is OLD's
# (first boot locked its password)
os_merge_accounts() {
  [ -f "$1" ] && [ -f "$2" ] || return 0
  awk -F: -v OFS=: -v kind="${1##*/}" '
    FILENAME == ARGV[1] { old[$1] = $0; order[++n] = $1; next }
    {
      seen[$1] = 1
      if (kind == "shadow" && $1 == "root" && ("root" in old)) { print old["root"]; next }
      if ((kind == "group" || kind == "gshadow") && ($1 in old)) {
        split(old[$1], o, ":")
        m = $4
        k = split(o[4], om, ",")
        for (i = 1; i <= k; i++) if (om[i] != "" && ("," m ",") !~ ("," om[i] ",")) m = (m == "" ? om[i] : m "," om[i])
        $4 = m
      }
      print
    }
    END { for (i = 1; i <= n; i++) if (!(order[i] in seen)) print old[order[i]] }
  ' "$1" "$2" >"$2.edgeforge-new" || die "cannot merge ${2##*/}"
  chmod --reference="$2" "$2.edgeforge-new" 2>/dev/null || true
  mv -f "$2.edgeforge-new" "$2" || die "cannot replace $2"
}

# os_carry OLD NEW: every EF_OS_CARRY entry from the root tree OLD into NEW
os_carry() {
  oc_old=$1 oc_new=$2
  set -f
  for oc_e in $EF_OS_CARRY; do
    oc_how=${oc_e%%:*}
    oc_rest=${oc_e#*:}
    oc_path=${oc_rest%%:*}
    oc_names=
    case $oc_rest in *:*) oc_names=${oc_rest#*:} ;; esac
    case $oc_how in
      file)
        if [ -e "$oc_old$oc_path" ] || [ -L "$oc_old$oc_path" ]; then
          mkdir -p "$oc_new${oc_path%/*}" || die "cannot create ${oc_path%/*} in the new slot"
          rm -rf "${oc_new:?}$oc_path"
          cp -a "$oc_old$oc_path" "$oc_new$oc_path" || die "cannot carry $oc_path"
        fi
        ;;
      dir)
        if [ -d "$oc_old$oc_path" ]; then
          mkdir -p "$oc_new$oc_path" || die "cannot create $oc_path in the new slot"
          cp -a "$oc_old$oc_path/." "$oc_new$oc_path/" || die "cannot carry $oc_path/"
        fi
        ;;
      accounts) os_merge_accounts "$oc_old$oc_path" "$oc_new$oc_path" ;;
      units)
        [ -d "$oc_old$oc_path" ] || continue
        oc_ifs=$IFS
        IFS=,
        for oc_n in $oc_names; do
          IFS=$oc_ifs
          find "$oc_old$oc_path" -name "$oc_n*" -prune -print | while IFS= read -r oc_f; do
            oc_rel=${oc_f#"$oc_old$oc_path"/}
            mkdir -p "$(dirname "$oc_new$oc_path/$oc_rel")" || exit 1
            rm -rf "${oc_new:?}$oc_path/${oc_rel:?}"
            cp -a "$oc_f" "$oc_new$oc_path/$oc_rel" || exit 1
          done || die "cannot carry the $oc_n* units of $oc_path"
        done
        IFS=$oc_ifs
        ;;
      replace)
        set +f
        for oc_f in "$oc_new"$oc_path; do [ ! -e "$oc_f" ] || rm -f "$oc_f"; done
        for oc_f in "$oc_old"$oc_path; do
          [ -e "$oc_f" ] || continue
          mkdir -p "$(dirname "$oc_new${oc_f#"$oc_old"}")" || die "cannot create the directory of ${oc_f#"$oc_old"} in the new slot"
          cp -a "$oc_f" "$oc_new${oc_f#"$oc_old"}" || die "cannot carry ${oc_f#"$oc_old"}"
        done
        set -f
        ;;
      *) die "unknown carry entry $oc_e" ;;
    esac
  done
  set +f
  # the mount points of the data volume, its binds and the shared partition
  for oc_b in $EF_DATA_MOUNT $EF_DATA_BINDS $EF_OS_SHARED; do mkdir -p "$oc_new${oc_b%%:*}"; done
}

# os_fix_fstab NEW UUID: the carried fstab's root line names the new slot
os_fix_fstab() {
  [ -f "$1/etc/fstab" ] || return 0
  awk -v dev="PARTUUID=$2" '$1 !~ /^#/ && $2 == "/" { $1 = dev } { print }' "$1/etc/fstab" >"$1/etc/fstab.edgeforge-new" || die "cannot rewrite $1/etc/fstab"
  mv -f "$1/etc/fstab.edgeforge-new" "$1/etc/fstab" || die "cannot replace $1/etc/fstab"
}

# os_carry_boot OLDBOOT NEWBOOT SLOT ROOTUUID (Raspberry Pi): the seed files cloud-init reads (their secrets were
# erased; the same instance-id keeps cloud-init from treating the next boot as a new machine) and the kernel
# command line of the running slot, pointed at the new slot's root
os_carry_boot() {
  for cb_f in user-data meta-data network-config; do
    if [ -f "$1/$cb_f" ]; then cp "$1/$cb_f" "$2/$cb_f" || die "cannot carry $cb_f to the new boot partition"; fi
  done
  [ -f "$1/cmdline.txt" ] || die "no cmdline.txt in the running boot partition"
  cb_line=$(head -n 1 "$1/cmdline.txt")
  cb_new=
  for cb_t in $cb_line; do
    case $cb_t in root=* | rauc.slot=* | panic=*) ;; *) cb_new="$cb_new $cb_t" ;; esac
  done
  printf '%s root=PARTUUID=%s rauc.slot=%s panic=10\n' "${cb_new# }" "$4" "$3" >"$2/cmdline.txt" || die "cannot write cmdline.txt in the new boot partition"
}
