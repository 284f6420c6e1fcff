# shellcheck shell=sh
# Container image archives pinned in the inventory (Flux's controllers, and any other component's):
# EF_IMAGE_ARCHIVES lists them as NAME=SHA256 words (scripts/render/k3s/images.ts). Every one is checked
# against its pin before any is placed (a mismatch names both hashes and stops), then each goes where K3s
# imports images at start (agent/images), under a dot-name first: K3s also imports while it runs, and reads
# only the name endings it knows, so it never sees half a file.

# image_archives_place DIR: DIR holds the archives (the bundle's k3s/airgap, or the mounted K3s partition)
image_archives_place() {
  [ -n "$EF_IMAGE_ARCHIVES" ] || return 0
  ia_src=$1
  ia_n=0
  for ia in $EF_IMAGE_ARCHIVES; do
    check_sha "$ia_src/${ia%%=*}" "container image archive ${ia%%=*}" "${ia#*=}"
    ia_n=$((ia_n + 1))
  done
  ia_dir="$R$EF_K3S_IMAGES_DIR"
  mkdir -p "$ia_dir" || die "cannot create $ia_dir"
  ia_new=0
  for ia in $EF_IMAGE_ARCHIVES; do
    ia_name=${ia%%=*}
    if [ -f "$ia_dir/$ia_name" ] && [ "$(sha_of "$ia_dir/$ia_name")" = "${ia#*=}" ]; then continue; fi
    install -m 0644 "$ia_src/$ia_name" "$ia_dir/.$ia_name.tmp" || die "cannot copy the container image archive $ia_name to $ia_dir"
    mv -f "$ia_dir/.$ia_name.tmp" "$ia_dir/$ia_name" || die "cannot rename $ia_dir/.$ia_name.tmp into place"
    ia_new=$((ia_new + 1))
  done
  log "container image archives: $ia_n checked against their pins, $ia_new placed in ${ia_dir#"$R"} (K3s imports them at start)"
}
