exec(open("setup.py").read())
from sklearn.metrics import roc_auc_score
idx = {c: i for i, c in enumerate(classes)}
u = ~hit
for a, bcls in (("triclinic", "monoclinic"), ("orthorhombic", "monoclinic"), ("tetragonal", "monoclinic")):
    sel = u & np.isin(true, [a, bcls])
    score = np.log(P[sel, idx[a]] + 1e-6) - np.log(P[sel, idx[bcls]] + 1e-6)
    print(a, "vs", bcls, sel.sum(), "AUC %.3f" % roc_auc_score(true[sel] == a, score))
# training shares
print(b.manifest["training"].get("class_shares"))
