module nucleus.local/bench/net-linux

go 1.25
