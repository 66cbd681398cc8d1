import subprocess,json,sys,statistics as st
bins=sys.argv[1:]; N=12
res={b:{} for b in bins}
for i in range(N):
  for b in bins:
    out=subprocess.run([b,'suites=alloc','pools=512,4096,16384'],capture_output=True,text=True).stdout
    for l in out.splitlines():
      if not l.startswith('{'): continue
      r=json.loads(l)
      if r.get('type')=='measurement' and r['bench'] in('bitmap_alloc_50pct_random','bitmap_alloc_95pct_full','bitmap_alloc_seq'):
        res[b].setdefault((r['bench'],r['pool_pages'],r['impl']),[]).append(r['p50'])
for b in bins:
  print('==',b)
  for bench in ('bitmap_alloc_50pct_random','bitmap_alloc_95pct_full'):
   for pool in (512,4096,16384):
    o=res[b][(bench,pool,'lab-bitmap')]; p=res[b][(bench,pool,'bitmap-allocator')]
    rs=[y/x for x,y in zip(o,p)]
    print(bench[:18],pool,'ours med %.2f peer med %.2f ratio med %.2f min %.2f max %.2f'%(st.median(o),st.median(p),st.median(rs),min(rs),max(rs)))
