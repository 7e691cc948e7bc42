#!/bin/sh
# Run by busybox acpid on the ACPI power button, so `virsh shutdown` powers off cleanly.
poweroff
