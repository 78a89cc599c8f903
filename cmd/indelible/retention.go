package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseRetention parses --retention: "" (keep forever), a number of days
// ("400d"), or a Go duration ("36h"). It must be at least a day.
func parseRetention(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 64)
		if err != nil || days <= 0 || days > 100*366 {
			return 0, fmt.Errorf("--retention %q: want a number of days such as 400d, or a duration such as 36h", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("--retention %q: want a number of days such as 400d, or a duration such as 36h", s)
		}
	}
	if d < 24*time.Hour {
		return 0, fmt.Errorf("--retention %q: want at least a day (24h)", s)
	}
	return d, nil
}
