export fn hm_probe() c_int { return 1; } test "x" { }
