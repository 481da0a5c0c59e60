#!/bin/sh
# certbot deploy hook: give Mosquitto its own copy of the renewed certificate.
# Install: install -m 0755 sample_settings/letsencrypt-deploy-hook.sh \
#              /etc/letsencrypt/renewal-hooks/deploy/hub-mosquitto.sh
# then run it once by hand: RENEWED_LINEAGE=/etc/letsencrypt/live/hub.example.com \
#              /etc/letsencrypt/renewal-hooks/deploy/hub-mosquitto.sh
# Mosquitto reads its certificates after dropping root, and /etc/letsencrypt/live is
# root-only; nginx reads the originals as root, and certbot reloads it itself
# (or add `systemctl reload nginx` below).
set -eu
DOMAIN=hub.example.com
SOURCE=/etc/letsencrypt/live/$DOMAIN
TARGET=/etc/mosquitto/certs/$DOMAIN

[ "${RENEWED_LINEAGE:-$SOURCE}" = "$SOURCE" ] || exit 0
install -d -m 0750 -o mosquitto -g mosquitto "$TARGET"
install -m 0644 -o mosquitto -g mosquitto "$SOURCE/fullchain.pem" "$TARGET/fullchain.pem"
install -m 0600 -o mosquitto -g mosquitto "$SOURCE/privkey.pem" "$TARGET/privkey.pem"
# SIGHUP: Mosquitto 2 reloads its certificates without dropping connections.
if systemctl is-active --quiet mosquitto; then
    systemctl reload mosquitto
fi
systemctl reload nginx 2>/dev/null || true
