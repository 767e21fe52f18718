module nucleus.local/bench/fs-linux

go 1.25
