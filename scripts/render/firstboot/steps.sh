# shellcheck shell=sh
# edgeforge first-boot program: the steps, in the order main runs them. Each one is idempotent: it
# compares what is there with what the bundle says and changes only the difference. `die` is a failure
# worth retrying (the service tries again after a backoff); `die_permanent` one that trying again cannot fix.
# Variables EF_* come from the per-device header edgeforge writes above this file.

step_preflight() {
  # reads only: `provision --dry-run` stops after this step
  if [ -z "$R" ] && [ "$(id -u)" != 0 ]; then die "run me as root (sudo sh $0)"; fi
  [ -f "$BUNDLE/SHA256SUMS" ] || die "the device bundle is missing: $BUNDLE/SHA256SUMS not found. Deliver it with the seed image, the disk image or 'edgeforge provision'"
  # files already erased after an earlier run are missing on purpose; the rest must match the build
  if ! (cd "$BUNDLE" && sha256sum --quiet --strict --ignore-missing -c SHA256SUMS) >"$STATE/tmp/sums.out" 2>&1; then
    die_permanent "the device bundle in $BUNDLE does not match its SHA256SUMS (damaged or edited): $(tr '\n' ' ' <"$STATE/tmp/sums.out")— rebuild and deliver it again"
  fi
  pf_arch="${EDGEFORGE_ARCH:-$(uname -m)}"
  [ "$pf_arch" = aarch64 ] || [ "$pf_arch" = arm64 ] || die_permanent "this bundle is for ARM64 (aarch64) devices; this machine is $pf_arch"
  pf_year=$(date -u +%Y)
  [ "$pf_year" -ge 2025 ] || die "the clock says year $pf_year: K3s would create certificates that are not valid yet. Let NTP sync (timedatectl), or set the time, then run again"
  # flannel-backend wireguard-native needs the kernel's WireGuard (built in, loaded, or loadable)
  if [ ! -d "$R/sys/module/wireguard" ] && ! sys modinfo wireguard >/dev/null 2>&1; then
    die_permanent "the kernel $(uname -r) has no WireGuard module, and K3s's flannel backend wireguard-native needs it. What to do: on Ubuntu for Raspberry Pi install linux-modules-extra-raspi and reboot; on Debian or Raspberry Pi OS use a kernel >= 5.6 built with CONFIG_WIREGUARD (the stock kernels are); or add the module to the base image. Then run this program again"
  fi
  for pf_tool in sha256sum cmp install nft systemctl; do
    have "$pf_tool" || die_permanent "required command '$pf_tool' is not installed; add it to the base image (package: $(pkg_for "$pf_tool"))"
  done
  if [ "$EF_K3S_INSTALL_MODE" = online ]; then have curl || die_permanent "online K3s install needs curl; add it to the base image or use an airgap bundle"; fi
  log "bundle verified, $pf_arch, WireGuard available, tools present"
}

pkg_for() {
  case $1 in
    nft) echo nftables ;;
    sha256sum | install) echo coreutils ;;
    cmp) echo diffutils ;;
    *) echo "$1" ;;
  esac
}

# secrets sealed to the site's tang server (encryption stage): unseal into RAM, linked from bundle/secrets
unseal_secrets() {
  if [ -f "$BUNDLE/sealed-secrets.jwe" ] && [ -f "$BUNDLE/encryption/unseal-secrets.sh" ]; then
    rm -f "$STATE/tmp/last-error"
    # (STEP in its environment: its log lines name the step that asked, not its own default)
    STEP="$STEP" sh "$BUNDLE/encryption/unseal-secrets.sh" || die "cannot unseal the device's one-time secrets: $(cat "$STATE/tmp/last-error" 2>/dev/null || echo 'see above')"
  fi
}

step_identity() {
  unseal_secrets
  put_text "$EF_HOSTNAME" "$R/etc/hostname" 0644
  if [ "$CHANGED" = 1 ] || { [ -z "$R" ] && [ "$(hostname)" != "$EF_HOSTNAME" ]; }; then
    sys hostname "$EF_HOSTNAME" || die "cannot set the hostname to $EF_HOSTNAME"
  fi
  id_hosts="$R/etc/hosts"
  if ! grep -q "^127\.0\.1\.1[[:space:]]$EF_HOSTNAME\$" "$id_hosts" 2>/dev/null; then
    mkdir -p "$STATE/tmp"
    { grep -v '^127\.0\.1\.1[[:space:]]' "$id_hosts" 2>/dev/null || true; printf '127.0.1.1\t%s\n' "$EF_HOSTNAME"; } >"$STATE/tmp/hosts"
    put_file "$STATE/tmp/hosts" "$id_hosts" 0644
    rm -f "$STATE/tmp/hosts"
  fi

  for id_user in $EF_USERS; do
    if ! grep -q "^$id_user:" "$R/etc/passwd" 2>/dev/null; then
      sys useradd --create-home --shell /bin/bash --user-group "$id_user" || die "cannot create user $id_user"
      log "created user $id_user"
    fi
    id_home=$(awk -F: -v u="$id_user" '$1 == u { print $6 }' "$R/etc/passwd" 2>/dev/null)
    [ -n "$id_home" ] || id_home="/home/$id_user"
    put_file "$BUNDLE/users/$id_user.authorized_keys" "$R$id_home/.ssh/authorized_keys" 0600
    if [ "$CHANGED" = 1 ]; then
      chmod 0700 "$R$id_home/.ssh" || die "cannot chmod $id_home/.ssh"
      sys chown -R "$id_user:$id_user" "$R$id_home/.ssh" || die "cannot give $id_home/.ssh to $id_user"
    fi
    # key-only: no password can be used, ever
    if ! grep -q "^$id_user:[!*]" "$R/etc/shadow" 2>/dev/null; then
      sys passwd -l "$id_user" >/dev/null || die "cannot lock the password of $id_user"
    fi
    case " $EF_SUDO_USERS " in
      *" $id_user "*) put_text "$id_user ALL=(ALL) NOPASSWD:ALL" "$R/etc/sudoers.d/90-edgeforge-$id_user" 0440 ;;
      *) rm -f "$R/etc/sudoers.d/90-edgeforge-$id_user" ;;
    esac
  done
  if ! grep -q '^root:[!*]' "$R/etc/shadow" 2>/dev/null; then
    sys passwd -l root >/dev/null || die "cannot lock the root password"
  fi

  # the pinned host key: what `provision` and operators' known_hosts expect
  id_pub="$BUNDLE/ssh/ssh_host_ed25519_key.pub"
  id_key="$BUNDLE/secrets/ssh_host_ed25519_key"
  id_changed=0
  if [ -f "$id_key" ]; then
    put_file "$id_key" "$R/etc/ssh/ssh_host_ed25519_key" 0600
    [ "$CHANGED" = 1 ] && id_changed=1
    put_file "$id_pub" "$R/etc/ssh/ssh_host_ed25519_key.pub" 0644
  elif ! cmp -s "$id_pub" "$R/etc/ssh/ssh_host_ed25519_key.pub"; then
    die "the device's SSH host key is not the pinned one and the bundle's private key was already erased: deliver the bundle again (edgeforge provision) to install it"
  fi
  # offer only the pinned key: other host keys would be trusted on first use by clients
  for id_old in "$R"/etc/ssh/ssh_host_rsa_key "$R"/etc/ssh/ssh_host_ecdsa_key "$R"/etc/ssh/ssh_host_dsa_key; do
    if [ -f "$id_old" ] || [ -f "$id_old.pub" ]; then rm -f "$id_old" "$id_old.pub"; id_changed=1; log "removed ${id_old#"$R"}"; fi
  done
  # sshd takes the first value it reads; 01- comes before cloud-init's 50-cloud-init.conf
  put_file "$BUNDLE/system/sshd.conf" "$R/etc/ssh/sshd_config.d/01-edgeforge.conf" 0644
  [ "$CHANGED" = 1 ] && id_changed=1
  if [ "$id_changed" = 1 ]; then
    sys sshd -t || die "sshd rejects its configuration (sshd -t); see the message above"
    sys systemctl reload-or-restart ssh.service 2>/dev/null || sys systemctl reload-or-restart sshd.service || die "cannot reload sshd"
    log "sshd uses the pinned host key, keys only"
  fi
}

step_kernel_firewall() {
  put_file "$BUNDLE/system/sysctl.conf" "$R/etc/sysctl.d/90-edgeforge-k3s.conf" 0644
  sys sysctl -q -p "$R/etc/sysctl.d/90-edgeforge-k3s.conf" >/dev/null || die "cannot apply the sysctls K3s's protect-kernel-defaults needs"
  # protect-kernel-defaults makes the kubelet exit when these differ: check the running kernel
  while IFS='= ' read -r kf_key kf_want; do
    case $kf_key in '' | '#'*) continue ;; esac
    kf_file="$R/proc/sys/$(echo "$kf_key" | tr . /)"
    if [ -f "$kf_file" ]; then
      kf_got=$(cat "$kf_file")
      [ "$kf_got" = "$kf_want" ] || die "sysctl $kf_key is $kf_got but K3s (protect-kernel-defaults) needs $kf_want; something overrides /etc/sysctl.d/90-edgeforge-k3s.conf"
    fi
  done <"$BUNDLE/system/sysctl.conf"

  put_file "$BUNDLE/system/modules-load.conf" "$R/etc/modules-load.d/edgeforge.conf" 0644
  if [ ! -d "$R/sys/module/wireguard" ]; then sys modprobe wireguard || die "cannot load the WireGuard kernel module (modprobe wireguard)"; fi

  if [ "$EF_BOARD_FAMILY" = raspberry-pi ]; then pi_cgroup_args; fi

  # our own table only: other tables (K3s's, Docker's, the distribution's) are left alone
  put_file "$BUNDLE/system/nftables.nft" "$R$EF_NFTABLES_FILE" 0600
  kf_nft=$CHANGED
  put_file "$BUNDLE/system/edgeforge-nftables.service" "$R/etc/systemd/system/edgeforge-nftables.service" 0644
  if [ "$kf_nft" = 1 ] || [ "$CHANGED" = 1 ] || [ ! -f "$STATE/nftables-applied" ]; then
    sys nft -c -f "$R$EF_NFTABLES_FILE" || die "nft rejects the firewall rules (see above); nothing was changed"
    sys nft -f "$R$EF_NFTABLES_FILE" || die "cannot load the firewall rules"
    sys systemctl enable edgeforge-nftables.service >/dev/null 2>&1 || die "cannot enable edgeforge-nftables.service (it restores the rules at boot)"
    : >"$STATE/nftables-applied"
    log "firewall: table inet edgeforge loaded (input policy drop)"
  fi
}

# Raspberry Pi kernels ship with the memory cgroup off; K3s needs it. cmdline.txt is one line.
pi_cgroup_args() {
  pi_cmd=
  for pi_try in "$R/boot/firmware/cmdline.txt" "$R/boot/cmdline.txt"; do
    if [ -f "$pi_try" ]; then pi_cmd=$pi_try; break; fi
  done
  [ -n "$pi_cmd" ] || die "Raspberry Pi board, but no cmdline.txt in /boot/firmware or /boot: is the boot partition mounted? K3s needs cgroup_memory=1 cgroup_enable=memory on the kernel command line"
  pi_line=$(head -n 1 "$pi_cmd")
  pi_new=$pi_line
  for pi_arg in cgroup_memory=1 cgroup_enable=memory; do
    case " $pi_new " in *" $pi_arg "*) ;; *) pi_new="$pi_new $pi_arg" ;; esac
  done
  if [ "$pi_new" != "$pi_line" ]; then
    mkdir -p "$STATE/tmp"
    printf '%s\n' "$pi_new" >"$STATE/tmp/cmdline.txt"
    cp "$pi_cmd" "$pi_cmd.edgeforge-orig" 2>/dev/null || true
    # the reboot is recorded first: killed between the two, the next run finds the arguments already there
    # and would otherwise never reboot into them (found by the journal fault test)
    durable_text "cmdline" "$STATE/reboot-required" || die "cannot write $STATE/reboot-required"
    put_file "$STATE/tmp/cmdline.txt" "$pi_cmd" 0644
    rm -f "$STATE/tmp/cmdline.txt"
    log "added cgroup_memory=1 cgroup_enable=memory to ${pi_cmd#"$R"}; a reboot is needed before K3s can start"
  fi
}

step_encrypt_data_volume() {
  unseal_secrets
  case $EF_ENCRYPTION_MODE in
    none)
      log "encryption mode none (the inventory says so): the data volume stays unencrypted and K3s data lives on the root filesystem"
      ;;
    *)
      # the disk-encryption stage plugs in here: a program in the bundle that creates/unlocks the volume
      if [ -f "$BUNDLE/encryption/encrypt-data-volume.sh" ]; then
        # run directly: the stage's program sends its own system changes through EDGEFORGE_SYS
        rm -f "$STATE/tmp/last-error"
        sh "$BUNDLE/encryption/encrypt-data-volume.sh"
        ed_rc=$?
        ed_why=$(cat "$STATE/tmp/last-error" 2>/dev/null || echo 'see above')
        [ "$ed_rc" != "$EXIT_PERMANENT" ] || die_permanent "the encrypted data volume step failed: $ed_why"
        [ "$ed_rc" = 0 ] || die "the encrypted data volume step failed: $ed_why"
      else
        die "encryption mode '$EF_ENCRYPTION_MODE', but this bundle has no encryption program (encryption/encrypt-data-volume.sh): it was rendered without the disk-encryption stage. Refusing to put K3s secrets on unencrypted storage: rebuild with edgeforge build, or set encryption: { mode: none } for this device in the inventory to proceed knowingly"
      fi
      ;;
  esac
}

# The K3s airgap partition of an edgeforge disk image (GPT name edgeforge-k3s, FAT label EFK3S), mounted
# read-only on $K_MNT until k3s_airgap_release (also on exit: die unmounts it). Dies naming both places
# when neither the bundle nor the partition has the files.
k3s_airgap_mount() {
  km_part=
  for km_c in "$R/dev/disk/by-partlabel/edgeforge-k3s" "$R/dev/disk/by-label/EFK3S"; do
    if [ -e "$km_c" ]; then km_part=$km_c && break; fi
  done
  [ -n "$km_part" ] || die "the K3s airgap files are not on this device: not in $BUNDLE/k3s/airgap, and no K3s airgap partition (/dev/disk/by-partlabel/edgeforge-k3s or /dev/disk/by-label/EFK3S). Flash an image built with 'edgeforge build --base-image' in airgap mode (it carries that partition), or deliver the files with 'edgeforge provision', then run this program again"
  K_MNT="$STATE/tmp/k3s-airgap.mnt"
  mkdir -p "$K_MNT" || die "cannot create $K_MNT"
  # a run killed while it was mounted left it mounted
  if mountpoint -q "$K_MNT" 2>/dev/null; then sys umount "$K_MNT" || die "cannot unmount the stale $K_MNT"; fi
  sys mount -t vfat -o ro,nosuid,nodev,noexec "$km_part" "$K_MNT" || die "cannot mount the K3s airgap partition ${km_part#"$R"} read-only on $K_MNT (vfat)"
  trap k3s_airgap_release EXIT
  log "reading the K3s airgap files from partition ${km_part#"$R"} (mounted read-only)"
}

k3s_airgap_release() {
  [ -n "${K_MNT:-}" ] || return 0
  sys umount "$K_MNT" || log "warning: cannot unmount $K_MNT (still in use?)"
  rmdir "$K_MNT" 2>/dev/null || true
  K_MNT=
  trap - EXIT
}

# After a reboot the data volume is opened by the unlock service; a step that writes into it (K3s's state,
# the K3s tokens) must not write under its mount points before that, or the files would land on the plain
# root filesystem and be hidden by the mount: open and mount it here (the encryption program is idempotent).
data_volume_ready() {
  [ "$EF_ENCRYPTION_MODE" != none ] && [ -z "$R" ] && [ -f "$STATE/data-volume" ] || return 0
  for dv_b in $EF_DATA_BINDS; do
    mountpoint -q "${dv_b%%:*}" && continue
    # the unlock service is still trying (tang unreachable): wait for it rather than race it
    [ "$(systemctl is-active "$EF_DATA_UNLOCK_UNIT" 2>/dev/null)" != activating ] || die "the data volume is still locked: $EF_DATA_UNLOCK_UNIT keeps trying (tang unreachable?)"
    log "the data volume is not mounted on ${dv_b%%:*} yet: opening it"
    sh "$BUNDLE/encryption/encrypt-data-volume.sh" || die "the encrypted data volume is not open yet (tang unreachable?): $(cat "$STATE/tmp/last-error" 2>/dev/null)"
    return 0
  done
}

step_k3s() {
  unseal_secrets
  data_volume_ready
  k_secrets="$R$EF_SECRETS_DIR"
  mkdir -p "$k_secrets" || die "cannot create $k_secrets"
  chmod 0700 "$k_secrets" || die "cannot chmod $k_secrets"
  k_changed=0
  for k_tok in k3s-token k3s-agent-token; do
    if [ -f "$BUNDLE/secrets/$k_tok" ]; then
      put_file "$BUNDLE/secrets/$k_tok" "$k_secrets/$k_tok" 0600
      [ "$CHANGED" = 1 ] && k_changed=1
    fi
  done
  case $EF_CLUSTER in
    multi-node-agent) k_need=k3s-agent-token ;;
    multi-node-server) k_need="k3s-token k3s-agent-token" ;;
    *) k_need=k3s-token ;;
  esac
  for k_tok in $k_need; do
    [ -f "$k_secrets/$k_tok" ] || die "the K3s token $k_tok is neither installed nor in the bundle: deliver the bundle again"
  done
  put_file "$BUNDLE/k3s/config.yaml" "$R/etc/rancher/k3s/config.yaml" 0600
  [ "$CHANGED" = 1 ] && k_changed=1
  if [ -f "$BUNDLE/k3s/registries.yaml" ]; then
    put_file "$BUNDLE/k3s/registries.yaml" "$R/etc/rancher/k3s/registries.yaml" 0600
    [ "$CHANGED" = 1 ] && k_changed=1
  elif [ -f "$R/etc/rancher/k3s/registries.yaml" ]; then
    rm -f "$R/etc/rancher/k3s/registries.yaml"
    k_changed=1
  fi

  k_service=k3s
  [ "$EF_K3S_EXEC" = agent ] && k_service=k3s-agent
  k_want="$EF_K3S_VERSION $EF_K3S_INSTALL_MODE $EF_K3S_EXEC"
  if [ -f "$STATE/k3s-installed" ] && [ "$(cat "$STATE/k3s-installed")" = "$k_want" ]; then
    log "K3s $EF_K3S_VERSION already installed"
    if [ "$k_changed" = 1 ]; then
      sys systemctl restart "$k_service" || die "K3s did not restart with the new configuration: journalctl -u $k_service"
      log "restarted $k_service with the new configuration"
    fi
    return 0
  fi
  # before the reboot that turns the memory cgroup on, install without starting: it starts at boot
  k_skip_start=false
  [ -f "$STATE/reboot-required" ] && k_skip_start=true
  mkdir -p "$STATE/tmp"
  if [ "$EF_K3S_INSTALL_MODE" = online ]; then
    k_script="$STATE/tmp/k3s-install.sh"
    rm -f "$k_script"
    sys curl -sfL --retry 5 --retry-delay 5 "$EF_K3S_INSTALL_URL" -o "$k_script" || die "cannot download the K3s install script from $EF_K3S_INSTALL_URL (network? proxy? try again when online, or use an airgap bundle)"
    check_sha "$k_script" "K3s install script" "$EF_K3S_INSTALL_SHA256"
    sys env INSTALL_K3S_VERSION="$EF_K3S_VERSION" INSTALL_K3S_EXEC="$EF_K3S_EXEC" INSTALL_K3S_SKIP_START="$k_skip_start" sh "$k_script" ||
      die "the K3s installer failed (see its output above)"
  else
    k_root="$BUNDLE/k3s/airgap"
    K_MNT=
    # too big for the seed: a disk image carries them on its own partition (the fleet base's EFK3S FAT),
    # `provision` uploads this device's ring's release into the bundle
    [ -f "$k_root/$EF_K3S_AIRGAP_BINARY" ] || k3s_airgap_mount
    [ -n "$K_MNT" ] && k_root=$K_MNT
    # on the partition, the canary ring's release (during a rollout) is in its own directory; the image
    # archives are at the root either way
    k_dir=$k_root
    [ -n "$K_MNT" ] && [ -n "$EF_K3S_AIRGAP_DIR" ] && k_dir="$K_MNT/$EF_K3S_AIRGAP_DIR"
    [ -f "$k_dir/$EF_K3S_AIRGAP_BINARY" ] || die_permanent "K3s $EF_K3S_VERSION's airgap files are not on this device's K3s partition (${k_dir#"$K_MNT"}/ is missing $EF_K3S_AIRGAP_BINARY): the image was built for another release; build and flash it again with 'edgeforge build --base-image'"
    check_sha "$k_dir/$EF_K3S_AIRGAP_BINARY" "K3s airgap binary" "$EF_K3S_BINARY_SHA256"
    check_sha "$k_dir/$EF_K3S_AIRGAP_IMAGES" "K3s airgap images" "$EF_K3S_IMAGES_SHA256"
    check_sha "$k_dir/$EF_K3S_AIRGAP_SCRIPT" "K3s airgap install script" "$EF_K3S_SCRIPT_SHA256"
    # the pinned container image archives (Flux's controllers, ...): checked, then placed before K3s starts
    image_archives_place "$k_root"
    mkdir -p "$R/usr/local/bin" "$R$EF_K3S_IMAGES_DIR" || die "cannot create the K3s directories"
    # each file whole or not at all (a power cut mid-copy leaves a temp file the next attempt replaces)
    k_put() {
      install -m "$3" "$1" "$2.edgeforge-new" || die "cannot write $2"
      flush "$2.edgeforge-new"
      mv -f "$2.edgeforge-new" "$2" || die "cannot replace $2"
    }
    k_put "$k_dir/$EF_K3S_AIRGAP_BINARY" "$R/usr/local/bin/k3s" 0755
    k_put "$k_dir/$EF_K3S_AIRGAP_IMAGES" "$R$EF_K3S_IMAGES_DIR/$EF_K3S_AIRGAP_IMAGES" 0644
    sys env INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_VERSION="$EF_K3S_VERSION" INSTALL_K3S_EXEC="$EF_K3S_EXEC" INSTALL_K3S_SKIP_START="$k_skip_start" sh "$k_dir/$EF_K3S_AIRGAP_SCRIPT" ||
      die "the K3s installer failed (see its output above)"
    k3s_airgap_release
  fi
  # written last: until then a power cut means "not installed", and the next attempt runs the installer again
  durable_text "$k_want" "$STATE/k3s-installed" || die "cannot record the K3s install in $STATE/k3s-installed"
  log "K3s $EF_K3S_VERSION installed ($EF_K3S_INSTALL_MODE, $k_service)$([ "$k_skip_start" = true ] && echo '; it starts after the reboot')"
}

step_flux_bootstrap() {
  if [ "$EF_CLUSTER" = multi-node-agent ]; then
    log "agent: Flux runs on the site's server; nothing to do here"
    return 0
  fi
  # the deploy key and SOPS keys (bundle/flux/edgeforge-flux-secrets.yaml) may have travelled sealed
  unseal_secrets
  data_volume_ready
  # the Flux stage's own placement (ordering, .skip hand-over files, a timer that hands over to Git)
  if command -v flux_place >/dev/null 2>&1; then
    if [ -d "$BUNDLE/flux" ] && [ -n "$(ls "$BUNDLE/flux" 2>/dev/null)" ]; then
      flux_place "$BUNDLE/flux" || die "cannot place the Flux bootstrap manifests in /var/lib/rancher/k3s/server/manifests"
      : >"$STATE/flux-bootstrapped"
    else
      log "Flux bootstrap files already placed and erased from the bundle"
    fi
    flux_install_handover || die "cannot install the Flux hand-over (edgeforge-flux-handover.timer)"
    return 0
  fi
  fx_dir="$R/var/lib/rancher/k3s/server/manifests"
  fx_n=0
  for fx_file in "$BUNDLE"/flux/*.yaml; do
    [ -f "$fx_file" ] || continue
    # K3s applies every file here at each start (Addon name = file name up to the first dot)
    put_file "$fx_file" "$fx_dir/${fx_file##*/}" 0600
    fx_n=$((fx_n + 1))
  done
  if [ "$fx_n" -gt 0 ]; then
    : >"$STATE/flux-bootstrapped"
    log "placed $fx_n Flux bootstrap manifest(s) in ${fx_dir#"$R"}"
  elif [ -f "$STATE/flux-bootstrapped" ]; then
    log "Flux bootstrap manifests already placed"
  else
    log "no Flux bootstrap manifests in this bundle (this build has no GitOps bootstrap); skipping"
  fi
}

# cloud-init keeps user-data (which carried this device's secrets) in several places
CLOUD_FILES="user-data.txt user-data.txt.i cloud-config.txt vendor-data.txt vendor-data.txt.i vendor-data2.txt vendor-data2.txt.i obj.pkl"
SEED_STUB="#cloud-config
# edgeforge: the one-time secrets this seed carried were erased after first boot (see $EF_APPLIED_FILE)
{}"

step_erase_secrets() {
  er_n=0
  # cloud-init may still be running (the service does not wait for cloud-final: that order is a cycle); its
  # later stages read the cached datasource (obj.pkl) that this step removes, so let it finish first
  if [ -z "$R" ] && command -v cloud-init >/dev/null 2>&1 && cloud-init status 2>/dev/null | grep -q 'status: running'; then
    log "waiting for cloud-init to finish before removing its cached copy of the seed"
    timeout 900 cloud-init status --wait >/dev/null 2>&1 || log "warning: cloud-init is still running after 15 minutes; erasing anyway"
  fi
  if [ -f "$BUNDLE/encryption/unseal-secrets.sh" ]; then
    sh "$BUNDLE/encryption/unseal-secrets.sh" --forget || die "cannot remove the unsealed secrets from RAM and the sealed file"
  fi
  for er_f in "$BUNDLE"/secrets/* "$BUNDLE"/flux/*.yaml; do
    if [ -f "$er_f" ]; then rm -f "$er_f" || die "cannot remove $er_f"; er_n=$((er_n + 1)); fi
  done
  for er_dir in "$R/var/lib/cloud/instance" "$R"/var/lib/cloud/instances/*; do
    [ -d "$er_dir" ] || continue
    for er_name in $CLOUD_FILES; do
      if [ -f "$er_dir/$er_name" ]; then rm -f "$er_dir/$er_name" || die "cannot remove $er_dir/$er_name"; er_n=$((er_n + 1)); fi
    done
  done
  rm -f "$R/run/cloud-init/instance-data-sensitive.json"
  # the seed itself: a stub with the same meta-data keeps cloud-init from treating the next boot as a new
  # instance (which would delete the pinned host keys), while the secrets are gone
  # (EF_SEED_DIRS: where cloud-init and the images keep copies; EDGEFORGE_SEED_MOUNT: a mounted seed volume)
  for er_seed in $EF_SEED_DIRS; do erase_seed_copy "$R$er_seed"; done
  [ -z "${EDGEFORGE_SEED_MOUNT:-}" ] || erase_seed_copy "$EDGEFORGE_SEED_MOUNT"
  if [ -z "$R" ] && [ -z "${EDGEFORGE_SEED_MOUNT:-}" ]; then erase_seed_volume; fi
  log "erased $er_n file(s) holding one-time secrets (wear-levelled flash may keep old blocks: the data volume's encryption is the real protection)"
}

# erase_seed_copy DIR: replace DIR/user-data with the stub (counted in er_n)
erase_seed_copy() {
  if [ -f "$1/user-data" ] && [ "$(cat "$1/user-data")" != "$SEED_STUB" ]; then
    printf '%s\n' "$SEED_STUB" >"$1/user-data" || die "cannot overwrite $1/user-data"
    er_n=$((er_n + 1))
  fi
}

# a NoCloud seed on its own FAT volume labelled EF_SEED_LABEL (cloud-init also accepts it in lower case)
erase_seed_volume() {
  es_label_lc=$(printf '%s' "$EF_SEED_LABEL" | tr '[:upper:]' '[:lower:]')
  es_dev=$(blkid -l -t LABEL="$EF_SEED_LABEL" -o device 2>/dev/null || blkid -l -t LABEL="$es_label_lc" -o device 2>/dev/null || true)
  [ -n "$es_dev" ] || return 0
  es_mnt="$STATE/tmp/seed"
  mkdir -p "$es_mnt"
  sys mount -t vfat "$es_dev" "$es_mnt" || die "cannot mount the seed volume $es_dev to erase its user-data; erase it by hand (mount it, replace user-data) — it holds this device's secrets"
  printf '%s\n' "$SEED_STUB" >"$es_mnt/user-data"
  es_rc=$?
  sync
  sys umount "$es_mnt" || true
  [ "$es_rc" = 0 ] || die "cannot overwrite user-data on the seed volume $es_dev; erase it by hand — it holds this device's secrets"
  log "replaced user-data on the seed volume $es_dev with a stub"
}

step_record() {
  # the day-2 timers that keep the device going after first boot (certificate renewal: render/day2/)
  if command -v renewal_install >/dev/null 2>&1; then renewal_install; fi
  rc_hash=$(sha_of "$BUNDLE/SHA256SUMS")
  rc_reboot=false
  [ -f "$STATE/reboot-required" ] && rc_reboot=true
  rc_steps=$(printf '%s' "$STEPS_DONE record" | sed 's/^ *//; s/ /","/g')
  mkdir -p "$STATE/tmp"
  printf '{"format":"edgeforge-applied/1","device":"%s","bundleSha256":"%s","k3sVersion":"%s","steps":["%s"],"rebootRequired":%s,"appliedAt":"%s"}\n' \
    "$EF_DEVICE_ID" "$rc_hash" "$EF_K3S_VERSION" "$rc_steps" "$rc_reboot" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$STATE/tmp/applied.json" ||
    die "cannot write $R$EF_APPLIED_FILE"
  chmod 0644 "$STATE/tmp/applied.json" || die "cannot chmod $STATE/tmp/applied.json"
  flush "$STATE/tmp/applied.json"
  mv -f "$STATE/tmp/applied.json" "$R$EF_APPLIED_FILE" || die "cannot write $R$EF_APPLIED_FILE"
  flush "${R}${EF_APPLIED_FILE%/*}"
  log "applied bundle $rc_hash"
}
