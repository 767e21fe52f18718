module nucleus.local/go-wasip1

go 1.22
