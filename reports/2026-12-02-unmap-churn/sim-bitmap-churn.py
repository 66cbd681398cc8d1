import random
def sim(n,pct=50,seed=1):
  rnd=random.Random(seed)
  keep=n*pct//100; pairs=min(1024,keep-1)
  used=[True]*n
  free=rnd.sample(range(1,n),n-keep)
  for p in free: used[p]=False
  live=[p for p in range(1,n) if used[p]]
  victims=rnd.sample(live,pairs)
  words=n//64
  full=lambda w: all(used[w*64:(w+1)*64])
  hint=min([w for w in range(words) if not full(w)])
  ev=dict(free_full=0,slow=0,take_full=0,same_word=0)
  last=None
  for v in victims:
    w=v//64
    if full(w): ev['free_full']+=1
    used[v]=False; hint=min(hint,w)
    if full(hint):
      ev['slow']+=1
      hint=min(x for x in range(hint+1,words) if not full(x))
    b=used.index(False,hint*64)
    used[b]=True
    if full(hint): ev['take_full']+=1
    if b//64==w: ev['same_word']+=1
  return {k:round(v/pairs,3) for k,v in ev.items()}
for n in (512,4096,16384): print(n,sim(n))
