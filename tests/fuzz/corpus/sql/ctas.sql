CREATE TABLE t AS SELECT 'a;b' FROM s -- c
; /* n /* e */ d */ INSERT INTO t VALUES (1)