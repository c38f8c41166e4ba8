module backendauth.test/kind/kindnetd

go 1.24
