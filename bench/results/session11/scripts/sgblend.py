exec(open("setup.py").read())
cat = pd.read_parquet("/tmp/xrdbatch-acc/catalog_real.parquet", columns=["status", "spacegroup_number", "crystal_system"])
cat = cat[cat.status == "ok"]
M = b.model
allv = [X, *views]
cond_p = {}
for s, mdl in M.space_group_models_.items():
    cond_p[s] = (mdl.classes_.astype(int), np.mean([mdl.predict_proba(V) for V in allv], 0))
def ranking(w, expo=1.0, prior_kind="real"):
    groups, blocks = [], []
    for j, s in enumerate(classes):
        if s not in cond_p: continue
        g, p = cond_p[s]
        cnt = cat[cat.crystal_system == s].spacegroup_number.value_counts()
        pr = np.array([cnt.get(x, 0) for x in g], float) + 0.5; pr /= pr.sum()
        groups.append(g); blocks.append(((1 - w) * p + w * pr[None, :]) * (P[:, j:j + 1] ** expo))
    g = np.concatenate(groups); pp = np.concatenate(blocks, 1)
    order = np.argsort(-pp, 1)
    ranked = g[order[:, :10]]
    # matched rows: match SG first
    for i in np.flatnonzero(hit):
        sgm = int(m["match_space_group"].iloc[i])
        rest = [x for x in ranked[i] if x != sgm]
        ranked[i] = np.array([sgm] + rest[:9])
    return ranked
for w in (0.0, 0.2, 0.5):
    for expo in (1.0, 0.7, 0.5, 0.3):
        r = ranking(w, expo)
        t1 = (r[:, 0] == sgt).mean(); t5 = (r[:, :5] == sgt[:, None]).any(1).mean()
        u = ~hit
        print(f"w {w} expo {expo}: top1 {t1:.3f} top5 {t5:.3f} | unmatched top1 {(r[u,0]==sgt[u]).mean():.3f} top5 {(r[u,:5]==sgt[u,None]).any(1).mean():.3f}")
