namespace PrefPipe.Host.Studies;

/// <summary>A mean and its 95 % percentile-bootstrap interval.</summary>
internal sealed record Interval(double Mean, double Low, double High);

/// <summary>
/// Bootstrap intervals for a study. Data are per seed, per held-out prompt: a value per prompt (a prompt's win rate over
/// its samples). One resample draws the seeds with replacement, then within each drawn seed its prompts with
/// replacement, and takes the mean over seeds of the per-seed prompt means: the interval covers both seed-to-seed
/// variation (training and evaluation sampling) and which prompts happened to be held out. With one seed it is the
/// prompt bootstrap alone.
/// </summary>
internal static class StudyStatistics
{
    /// <summary>Resamples per interval.</summary>
    public const int Resamples = 2000;

    /// <summary>The RNG seed: the same data give the same interval.</summary>
    public const int RngSeed = 20240917;

    /// <summary>Said in study.json, so a reader knows what the interval covers.</summary>
    public const string Method =
        "95% percentile bootstrap, two levels: seeds resampled with replacement, then held-out prompts with replacement " +
        "within each drawn seed (a prompt's value is its win rate over its samples: final reward > start reward = 1, tie = 0.5); " +
        "2000 resamples, fixed RNG seed 20240917. Paired differences resample the per-prompt differences of the two cells " +
        "over their shared seeds (same prompts, same evaluation seed).";

    /// <summary>The mean over seeds of the per-seed prompt means, and its two-level bootstrap interval.</summary>
    /// <param name="perSeed">One array per seed: a value per held-out prompt. Empty seeds are refused.</param>
    /// <param name="resamples">Number of resamples.</param>
    /// <param name="seed">RNG seed.</param>
    public static Interval Bootstrap(IReadOnlyList<double[]> perSeed, int resamples = Resamples, int seed = RngSeed)
    {
        ArgumentNullException.ThrowIfNull(perSeed);
        if (perSeed.Count == 0) throw new ArgumentException("no seeds to bootstrap over", nameof(perSeed));
        if (perSeed.Any(s => s.Length == 0)) throw new ArgumentException("a seed has no prompts", nameof(perSeed));
        double mean = perSeed.Average(s => s.Average());
        var rng = new Random(seed);
        var stats = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            double sum = 0;
            for (int k = 0; k < perSeed.Count; k++)
            {
                var prompts = perSeed[rng.Next(perSeed.Count)];
                double s = 0;
                for (int j = 0; j < prompts.Length; j++) s += prompts[rng.Next(prompts.Length)];
                sum += s / prompts.Length;
            }
            stats[r] = sum / perSeed.Count;
        }
        Array.Sort(stats);
        return new Interval(mean, Percentile(stats, 0.025), Percentile(stats, 0.975));
    }

    /// <summary>Linear interpolation between order statistics of sorted values (numpy's default).</summary>
    internal static double Percentile(double[] sorted, double q)
    {
        double at = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(at), hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (at - lo) * (sorted[hi] - sorted[lo]);
    }

    /// <summary>
    /// Per-prompt win rate of the final policy over the start: samples are paired by (prompt, sample index); a win is 1,
    /// a tie 0.5. Prompts are returned in ordinal order of their ids, so two runs on the same held-out prompts line up.
    /// </summary>
    public static SortedDictionary<string, double> PromptWinRates(IEnumerable<PrefPipe.Artifacts.Rows.EvaluationRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var start = new Dictionary<(string, int), double>();
        var final = new List<PrefPipe.Artifacts.Rows.EvaluationRow>();
        foreach (var row in rows)
        {
            if (row.Policy == "start") start[(row.PromptId, row.SampleIndex)] = row.Reward;
            else if (row.Policy == "final") final.Add(row);
        }
        var wins = new Dictionary<string, (double Sum, int N)>();
        foreach (var f in final)
        {
            if (!start.TryGetValue((f.PromptId, f.SampleIndex), out double s))
                throw new InvalidDataException($"prompt {f.PromptId}, sample {f.SampleIndex}: a final sample without its start sample");
            double win = f.Reward > s ? 1 : f.Reward == s ? 0.5 : 0;
            var (sum, n) = wins.GetValueOrDefault(f.PromptId);
            wins[f.PromptId] = (sum + win, n + 1);
        }
        return new SortedDictionary<string, double>(wins.ToDictionary(w => w.Key, w => w.Value.Sum / w.Value.N), StringComparer.Ordinal);
    }
}
