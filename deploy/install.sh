#!/bin/sh
# Install the autoscaler on a host: the binary, a manual page per command,
# bash/zsh/fish completions, the documentation and the systemd unit (not
# enabled; `systemctl enable --now vedfolnir-autoscaler` once
# /etc/vedfolnir/api-token and the policies are in place).
#
#   sudo deploy/install.sh                      a release build, under /usr/local
#   PREFIX=/usr DESTDIR=/tmp/pkg deploy/install.sh    staged, for a package
#   BIN=path/to/vedfolnir-autoscaler deploy/install.sh   a binary built before
#
# The manual pages and completions are made by the binary from its own
# command-line definitions (`man --out`, `completions`), so they say what
# its `--help` says.
set -eu
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}
name=vedfolnir-autoscaler
if [ -z "${BIN:-}" ]; then
    # A toolchain installed before without the policy target gains it here.
    if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
        rustup target add wasm32-wasip2 >&2
    fi
    cargo build --release --locked --quiet -p "$name"
    BIN=target/release/$name
fi
[ -x "$BIN" ] || { echo "install.sh: no executable at BIN=$BIN" >&2; exit 1; }

install -D -m 755 "$BIN" "$dest$prefix/bin/$name"
"$BIN" man --out "$dest$prefix/share/man/man1" >/dev/null
install -d "$dest$prefix/share/bash-completion/completions" \
    "$dest$prefix/share/zsh/site-functions" \
    "$dest$prefix/share/fish/vendor_completions.d"
"$BIN" completions bash >"$dest$prefix/share/bash-completion/completions/$name"
"$BIN" completions zsh >"$dest$prefix/share/zsh/site-functions/_$name"
"$BIN" completions fish >"$dest$prefix/share/fish/vendor_completions.d/$name.fish"
install -d "$dest$prefix/share/doc/$name"
install -m 644 README.md docs/*.md "$dest$prefix/share/doc/$name/"
# The unit names the binary and the documentation where they now are.
install -d "$dest/etc/systemd/system"
sed -e "s|/usr/local/bin/$name|$prefix/bin/$name|" \
    -e "s|file:///usr/share/doc/$name/|file://$prefix/share/doc/$name/|" \
    deploy/systemd/$name.service >"$dest/etc/systemd/system/$name.service"
chmod 644 "$dest/etc/systemd/system/$name.service"
echo "installed $name under $dest$prefix (man $name, completions for bash, zsh and fish) and $dest/etc/systemd/system/$name.service"
