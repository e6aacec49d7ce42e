package main

import "runtime/debug"

// version is set at build time (-ldflags "-X main.version=v1.2.3").
var version string

// buildVersion is version, else the module version or VCS revision Go
// recorded in the binary, else "dev".
func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return s.Value[:12]
			}
		}
	}
	return "dev"
}
