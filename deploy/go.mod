module github.com/keelhq/keel/deploy

go 1.26.0
