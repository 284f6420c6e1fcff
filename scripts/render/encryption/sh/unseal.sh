# shellcheck shell=sh
# edgeforge disk encryption: the one-time secrets that travelled sealed to the site's tang server.
# bundle/sealed-secrets.jwe holds one compact JWE per line (one per tang server of the site, any one
# suffices); each decrypts (clevis decrypt, which asks tang) to a tar archive of the files that would
# otherwise sit in bundle/secrets/. They are unpacked into RAM (/run is tmpfs) and bundle/secrets/NAME
# becomes a symlink to each, so the rest of the first-boot program reads them where it always does and
# the plaintext never touches the flash. At reboot they are gone; the sealed file is erased with the rest.

EDV_UNSEALED_DIR="${EDV_UNSEALED_DIR:-$R$EF_RUN_DIR/secrets}"

# the tang URL a sealed line is for (from its protected header; for messages)
edv_jwe_url() {
  printf '%s' "${1%%.*}" | jose b64 dec -i- 2>/dev/null | jose fmt -j- -Og clevis -g tang -g url -u- 2>/dev/null || echo '?'
}

# edv_unseal SEALED DESTDIR: decrypt with any tang server that answers, unpack into DESTDIR (0700)
edv_unseal() {
  us_in=$1 us_dest=$2
  { mkdir -p "$us_dest" && chmod 0700 "$us_dest"; } || die "cannot create $us_dest"
  us_tar="$us_dest/.sealed.tar"
  us_ok=0 us_tried=
  while IFS= read -r us_jwe; do
    [ -n "$us_jwe" ] || continue
    us_url=$(edv_jwe_url "$us_jwe")
    if printf '%s' "$us_jwe" | clevis decrypt >"$us_tar" 2>"$us_dest/.err"; then
      us_ok=1
      break
    fi
    us_tried="$us_tried $us_url"
    log "could not unseal with tang server $us_url: $(tr '\n' ' ' <"$us_dest/.err")"
  done <"$us_in"
  rm -f "$us_dest/.err"
  if [ "$us_ok" != 1 ]; then
    rm -f "$us_tar"
    die "cannot unseal this device's secrets: no tang server answered (tried:$us_tried). The device must be on its site's network (tang unreachable = it was moved off-site, or the network/tang is down). Fix that and run the program again"
  fi
  tar -x -o -f "$us_tar" -C "$us_dest" || { rm -f "$us_tar"; die "the unsealed secrets archive does not unpack (tar)"; }
  rm -f "$us_tar"
  log "unsealed $(find "$us_dest" -maxdepth 2 -type f ! -name '.*' | grep -c .) secret file(s) with tang server $us_url into RAM (${us_dest#"$R"})"
}

# unseal bundle/sealed-secrets.jwe (if the bundle has one) and link bundle/secrets/* to the RAM copies
edv_unseal_secrets() {
  ud_sealed="$BUNDLE/sealed-secrets.jwe"
  if [ ! -f "$ud_sealed" ]; then
    log "no sealed secrets in this bundle (site without tang: its secrets travel in bundle/secrets/, see docs/disk-encryption.md)"
    return 0
  fi
  ud_sum=$(sha256sum "$ud_sealed" | cut -d ' ' -f 1)
  if [ "$(cat "$EDV_UNSEALED_DIR/.from" 2>/dev/null)" != "$ud_sum" ]; then
    edv_unseal "$ud_sealed" "$EDV_UNSEALED_DIR"
    printf '%s\n' "$ud_sum" >"$EDV_UNSEALED_DIR/.from"
  fi
  { mkdir -p "$BUNDLE/secrets" && chmod 0700 "$BUNDLE/secrets"; } || die "cannot create $BUNDLE/secrets"
  # NAME -> bundle/secrets/NAME; DIR/NAME (e.g. flux/*.yaml holding the deploy and SOPS keys) -> bundle/DIR/NAME
  for ud_f in "$EDV_UNSEALED_DIR"/* "$EDV_UNSEALED_DIR"/*/*; do
    [ -f "$ud_f" ] || continue
    ud_rel=${ud_f#"$EDV_UNSEALED_DIR"/}
    case $ud_rel in */*) ud_to="$BUNDLE/$ud_rel" ;; *) ud_to="$BUNDLE/secrets/$ud_rel" ;; esac
    mkdir -p "${ud_to%/*}" || die "cannot create ${ud_to%/*}"
    ln -sfn "$ud_f" "$ud_to" || die "cannot link $ud_to"
  done
}

# after use: the RAM copies, the links and the sealed file (the erase step calls this)
edv_forget_secrets() {
  for fs_f in "$BUNDLE"/secrets/* "$BUNDLE"/*/*; do
    if [ -L "$fs_f" ]; then
      case $(readlink "$fs_f") in "$EDV_UNSEALED_DIR"/*) rm -f "$fs_f" ;; esac
    fi
  done
  rm -rf "$EDV_UNSEALED_DIR"
  rm -f "$BUNDLE/sealed-secrets.jwe"
}
