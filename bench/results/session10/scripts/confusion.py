exec(open("setup.py").read())
pred = classes[P.argmax(1)]
for name, sel in (("matched", hit), ("unmatched", ~hit)):
    print(name, sel.sum(), "acc %.3f" % np.mean(pred[sel] == true[sel]))
    print(pd.crosstab(pd.Series(true[sel], name="true"), pd.Series(pred[sel], name="pred")))
# probability given to the true class among unmatched errors
idx = {c: i for i, c in enumerate(classes)}
pt = P[np.arange(len(P)), [idx[t] for t in true]]
err = (~hit) & (pred != true)
print("unmatched errors:", err.sum(), "true-class prob quantiles", np.quantile(pt[err], [.25, .5, .75]).round(3))
rank = (P > pt[:, None]).sum(1)
print("rank of true class among unmatched errors:", np.bincount(rank[err]))
