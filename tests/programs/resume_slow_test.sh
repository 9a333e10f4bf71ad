#!/usr/bin/env bash
# (b') resume_test.sh with clients that are still training when the restarted server asks them
# for the round again (see there).
FEDPP_RESUME_SLOW=1 exec bash "$(dirname "${BASH_SOURCE[0]}")/resume_test.sh" "$@"
