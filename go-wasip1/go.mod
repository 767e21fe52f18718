module nucleus.local/go-wasip1

// 1.23: the oldest Go whose default GODEBUG (asynctimerchan=0) lets the
// standard library's own tests (testing/synctest) run; built with the
// machine's toolchain (GOTOOLCHAIN=local).
go 1.23
