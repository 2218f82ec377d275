#!/usr/bin/env python3
"""Self instructions per request by function, callgrind dump A against B.

    scripts/callgrind-diff.py A.out B.out REQUESTS [ROWS]

Rows are sorted by the absolute difference; the first rows (thread entry
points) are inclusive totals that callgrind_annotate lists too.
"""
import re,subprocess,sys
def load(f):
    out=subprocess.run(["callgrind_annotate","--threshold=100",f],capture_output=True,text=True).stdout
    d={}
    on=False
    for l in out.splitlines():
        if 'file:function' in l: on=True; continue
        m=re.match(r'^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$',l)
        if on and m: d[m.group(2)]=d.get(m.group(2),0)+int(m.group(1).replace(',',''))
    return d
a=load(sys.argv[1]); b=load(sys.argv[2]); n=int(sys.argv[3])
rows=[((a.get(k,0)-b.get(k,0))/n,a.get(k,0)/n,b.get(k,0)/n,k) for k in set(a)|set(b)]
rows.sort(key=lambda r:-abs(r[0]))
print("%8s %8s %8s  %s"%("diff","A","B","function (self cost per request)"))
for r in rows[:int(sys.argv[4]) if len(sys.argv)>4 else 30]:
    print("%8.0f %8.0f %8.0f  %s"%(r[0],r[1],r[2],re.sub(r' \[.*\]$','',r[3])[:140]))
