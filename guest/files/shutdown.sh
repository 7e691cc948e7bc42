#!/bin/sh
echo "KOVA-GUEST-SHUTDOWN hostname=$(hostname)"
umount -a -r 2>/dev/null
exit 0
