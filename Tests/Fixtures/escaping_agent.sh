#!/bin/sh
# An agent that leaves a detached grandchild behind (double fork + setsid;
# its argv holds MARKER), then ends as MODE says: done, failed or hang.
# The tests copy it with MODE and MARKER set on the second line.
python3 -c '
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", sys.argv[1]])
    os._exit(0)
os.wait()
' "$MARKER"
case "$MODE" in
done) echo '# escaping' > README.md; echo ok > ok.txt ;;
failed) exit 1 ;;
*) exec sleep 300 ;;
esac
