package nix

import "testing"

func TestParseGCSummary(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    GCResult
		wantErr bool
	}{
		{"nix 2.8", "/nix/store/abc-x\n3 store paths deleted, 0.19 MiB freed\n", GCResult{Paths: 3, Bytes: 199229}, false},
		{"nothing", "0 store paths deleted, 0.00 MiB freed\n", GCResult{}, false},
		{"large", "1200 store paths deleted, 5120.50 MiB freed\n", GCResult{Paths: 1200, Bytes: 5369233408}, false},
		{"no summary", "error: something\n", GCResult{}, true},
		{"empty", "", GCResult{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGCSummary(tt.out)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseGCSummary = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
