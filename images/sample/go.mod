module drover.local/sample

go 1.24
