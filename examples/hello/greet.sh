#!/bin/sh
echo "${GREETING:-hi} from $(hostname) as uid $(id -u)"
