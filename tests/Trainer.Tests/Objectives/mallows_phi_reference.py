# Expected values for MallowsPhiObjectiveTests: L(s) = -log g_phi(s) and dL/ds, from the definition in
# docs/objectives.md evaluated with mpmath at 600 significant digits (independent of the log-space code under test).
#   g(s) = (s+1)/(1-phi^(s+1)) - s/(1-phi^s) for s > 0,  g(0) = 1/2,  g(s) = 1 - g(-s) for s < 0.
# At s = 0 the loss is log 2 and the slope is -g'(0+)/g(0) = -2*g'(0+) (g' is the same on both sides of the jump);
# g'(0+) is taken at s = 1e-40.
from mpmath import mp, mpf, log, diff, nstr
mp.dps = 600

def gpos(s, phi):
    return (s + 1) / (1 - phi ** (s + 1)) - s / (1 - phi ** s)

def g(s, phi):
    if s > 0: return gpos(s, phi)
    if s < 0: return 1 - gpos(-s, phi)
    return mpf(1) / 2

def loss(s, phi): return -log(g(s, phi))

for phi_s in ["0.5", "0.9", "0.99"]:
    phi = mpf(phi_s)
    for s_s in ["0", "1e-9", "-1e-9", "0.25", "-0.25", "3", "-3", "30", "-30", "100", "-100", "1000", "-1000"]:
        s = mpf(s_s)
        if s == 0:
            value = log(2)
            slope = -2 * diff(lambda t: gpos(t, phi), mpf("1e-40"))
        else:
            value = loss(s, phi)
            slope = diff(lambda t: loss(t, phi), s)
        print(f'[InlineData({phi_s}, {s_s}, {nstr(value, 17, min_fixed=-1, max_fixed=-1)}, {nstr(slope, 17, min_fixed=-1, max_fixed=-1)})]')
