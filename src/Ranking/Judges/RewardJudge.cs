namespace PrefPipe.Ranking.Judges;

/// <summary>
/// Bradley–Terry on reward-model scores: P(a ≻ b) = σ(r_a − r_b); a tie when |r_a − r_b| &lt; ε.
/// Scores come from the scored-candidates step, so the judge itself never runs a model.
/// </summary>
internal sealed class RewardJudge : IPairwiseJudge
{
    private readonly IReadOnlyDictionary<(string PromptId, int Index), float> _scores;
    private readonly double _epsilon;

    /// <param name="scores">Reward per (prompt id, candidate index).</param>
    /// <param name="epsilon">Tie margin ε ≥ 0 in reward units.</param>
    public RewardJudge(IReadOnlyDictionary<(string PromptId, int Index), float> scores, double epsilon)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epsilon);
        _scores = scores;
        _epsilon = epsilon;
    }

    /// <inheritdoc />
    public string Name => "reward";

    /// <inheritdoc />
    public bool OrderSensitive => false;

    /// <inheritdoc />
    public ValueTask<JudgeVerdict> CompareAsync(JudgeRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        double a = Score(request.PromptId, request.IndexA);
        double b = Score(request.PromptId, request.IndexB);
        double p = 1 / (1 + Math.Exp(-(a - b)));
        var verdict = Math.Abs(a - b) < _epsilon ? Verdict.Tie : a > b ? Verdict.A : Verdict.B;
        return ValueTask.FromResult(new JudgeVerdict(verdict, p));
    }

    private float Score(string promptId, int index) =>
        _scores.TryGetValue((promptId, index), out float s) && !float.IsNaN(s)
            ? s
            : throw new InvalidOperationException($"Reward judge: no reward score for prompt '{promptId}' candidate {index}; score candidates before ranking.");
}
