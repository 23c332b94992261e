exec(open("setup.py").read())
fr = b.model.predict_frame(X, top_k=10, proba=P, views=views, matches=m)
pred = fr.crystal_system.values
top = fr[[f"space_group_{i}" for i in range(1, 11)]].values
ok_sys = pred == true
for name, sel in (("all", np.ones(len(X), bool)), ("matched", hit), ("unmatched", ~hit)):
    print(name, sel.sum(), "sys %.3f" % ok_sys[sel].mean(), " ".join("top%d %.3f" % (k, (top[sel, :k] == sgt[sel, None]).any(1).mean()) for k in (1, 3, 5, 10)))
u = ~hit
print("unmatched, system right:", (u & ok_sys).sum(), " ".join("top%d %.3f" % (k, (top[u & ok_sys, :k] == sgt[u & ok_sys, None]).any(1).mean()) for k in (1, 5, 10)))
print("unmatched, system wrong:", (u & ~ok_sys).sum(), " ".join("top%d %.3f" % (k, (top[u & ~ok_sys, :k] == sgt[u & ~ok_sys, None]).any(1).mean()) for k in (1, 5, 10)))
# per system within unmatched, system right
for s in classes:
    sel = u & ok_sys & (true == s)
    if sel.sum(): print(s, sel.sum(), "top1 %.2f top5 %.2f" % ((top[sel, :1] == sgt[sel, None]).any(1).mean(), (top[sel, :5] == sgt[sel, None]).any(1).mean()))
# most common true SG among unmatched misses (top5)
miss = u & ~(top[:, :5] == sgt[:, None]).any(1)
print(pd.Series(sgt[miss]).value_counts().head(20).to_dict())
print("true SG counts unmatched", pd.Series(sgt[u]).value_counts().head(15).to_dict())
