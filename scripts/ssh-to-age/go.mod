module github.com/homelab-farm/farm/scripts/ssh-to-age

go 1.26.0
