using System.Text.Json.Serialization;
using PrefPipe.Reporting;
using PrefPipe.Splitter.Rules;

namespace PrefPipe.Splitter.Quality;

/// <summary>Data-quality figures for a split: what a person checks before training on it.</summary>
public sealed record QualityReport
{
    /// <summary>Pairs in.</summary>
    [JsonPropertyName("pairs")] public int Pairs { get; init; }

    /// <summary>Pairs assigned to easy.</summary>
    [JsonPropertyName("easy")] public int Easy { get; init; }

    /// <summary>Pairs assigned to difficult.</summary>
    [JsonPropertyName("difficult")] public int Difficult { get; init; }

    /// <summary>Pairs dropped (with reasons in the dropped output).</summary>
    [JsonPropertyName("dropped")] public int Dropped { get; init; }

    /// <summary>Pairs whose chosen and rejected were swapped.</summary>
    [JsonPropertyName("flipped")] public int Flipped { get; init; }

    /// <summary>Easy / pairs.</summary>
    [JsonPropertyName("easy_fraction")] public double EasyFraction { get; init; }

    /// <summary>Difficult / pairs.</summary>
    [JsonPropertyName("difficult_fraction")] public double DifficultFraction { get; init; }

    /// <summary>The rule used ("threshold" or "quantile").</summary>
    [JsonPropertyName("rule")] public string Rule { get; init; } = "";

    /// <summary>τ, or for quantile the smallest easy gap.</summary>
    [JsonPropertyName("threshold")] public double Threshold { get; init; }

    /// <summary>Pairs with |gap| below the tie ε.</summary>
    [JsonPropertyName("ties")] public int Ties { get; init; }

    /// <summary>Pairs with a negative gap (before any flip).</summary>
    [JsonPropertyName("negative_gaps")] public int NegativeGaps { get; init; }

    /// <summary>Fraction of pairs where the judge and the reward model disagree.</summary>
    [JsonPropertyName("judge_reward_disagreement")] public double JudgeRewardDisagreement { get; init; }

    /// <summary>Fraction of pairs whose chosen response is longer than the rejected one (length bias).</summary>
    [JsonPropertyName("chosen_longer_fraction")] public double ChosenLongerFraction { get; init; }

    /// <summary>Gap statistics over pairs with a score: min, mean, median, max.</summary>
    [JsonPropertyName("gap_min")] public double GapMin { get; init; }

    /// <summary>Mean gap.</summary>
    [JsonPropertyName("gap_mean")] public double GapMean { get; init; }

    /// <summary>Median gap.</summary>
    [JsonPropertyName("gap_median")] public double GapMedian { get; init; }

    /// <summary>Largest gap.</summary>
    [JsonPropertyName("gap_max")] public double GapMax { get; init; }

    /// <summary>Builds the report from the inputs and decisions.</summary>
    internal static QualityReport Build(IReadOnlyList<PairFacts> pairs, IReadOnlyList<SplitDecision> decisions, SplitterOptions options, double effectiveThreshold)
    {
        var gaps = pairs.Select(p => p.Gap).Where(double.IsFinite).OrderBy(g => g).ToArray();
        int n = pairs.Count;
        double Frac(int count) => n == 0 ? 0 : (double)count / n;
        return new QualityReport
        {
            Pairs = n,
            Easy = decisions.Count(d => d.Set == SplitSet.Easy),
            Difficult = decisions.Count(d => d.Set == SplitSet.Difficult),
            Dropped = decisions.Count(d => d.Set == SplitSet.Dropped),
            Flipped = decisions.Count(d => d.Flipped),
            EasyFraction = Frac(decisions.Count(d => d.Set == SplitSet.Easy)),
            DifficultFraction = Frac(decisions.Count(d => d.Set == SplitSet.Difficult)),
            Rule = options.Rule == SplitRule.Threshold ? "threshold" : "quantile",
            Threshold = effectiveThreshold,
            Ties = pairs.Count(p => Math.Abs(p.Gap) < options.TieEpsilon),
            NegativeGaps = pairs.Count(p => p.Gap < 0),
            JudgeRewardDisagreement = Frac(pairs.Count(p => !p.JudgeAgrees)),
            ChosenLongerFraction = Frac(pairs.Count(p => p.ChosenLength > p.RejectedLength)),
            GapMin = gaps.Length > 0 ? gaps[0] : double.NaN,
            GapMean = gaps.Length > 0 ? gaps.Average() : double.NaN,
            GapMedian = gaps.Length == 0 ? double.NaN : gaps.Length % 2 == 1 ? gaps[gaps.Length / 2] : (gaps[gaps.Length / 2 - 1] + gaps[gaps.Length / 2]) / 2,
            GapMax = gaps.Length > 0 ? gaps[^1] : double.NaN,
        };
    }

    /// <summary>The report as a table for people.</summary>
    public SummaryTable ToTable() => new SummaryTable("measure", "value")
        .Add("pairs", Pairs)
        .Add("easy", $"{Easy} ({Pct(EasyFraction)})")
        .Add("difficult", $"{Difficult} ({Pct(DifficultFraction)})")
        .Add("dropped", Dropped)
        .Add("flipped", Flipped)
        .Add($"rule ({Rule}) threshold", Threshold)
        .Add("ties", Ties)
        .Add("negative gaps", NegativeGaps)
        .Add("judge / reward model disagree", $"{Pct(JudgeRewardDisagreement)}")
        .Add("chosen longer than rejected", $"{Pct(ChosenLongerFraction)}")
        .Add("gap min / median / mean / max", $"{GapMin:G4} / {GapMedian:G4} / {GapMean:G4} / {GapMax:G4}");

    private static string Pct(double fraction) => (fraction * 100).ToString("F1", System.Globalization.CultureInfo.InvariantCulture) + "%";

    /// <summary>Writes the gap histogram (easy and difficult overlaid, threshold marked) as a PNG.</summary>
    internal static void WriteGapHistogram(string path, IReadOnlyList<SplitDecision> decisions, double threshold)
    {
        var easy = decisions.Where(d => d.Set == SplitSet.Easy).Select(d => d.Gap).ToArray();
        var difficult = decisions.Where(d => d.Set == SplitSet.Difficult).Select(d => d.Gap).ToArray();
        var markers = double.IsFinite(threshold) ? new[] { new ChartMarker(threshold, $"threshold {threshold:G4}") } : [];
        Charts.Histogram(path, "Reward gap r(chosen) − r(rejected)", "reward gap",
            [new ChartSeries("easy", [], easy), new ChartSeries("difficult", [], difficult)], markers);
    }
}
