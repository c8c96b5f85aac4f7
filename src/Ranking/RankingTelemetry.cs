using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace PrefPipe.Ranking;

/// <summary>
/// The rank stage's traces and metrics, on the <see cref="ActivitySource"/> and <see cref="Meter"/> named <c>PrefPipe</c>
/// (the host's OpenTelemetry providers listen to that name): a <c>judge batch</c> span per <see cref="BatchPrompts"/>
/// prompts ranked with a judge, and a counter of judge calls. Attributes are kinds, model names and counts: never an
/// endpoint, a query string or a credential.
/// </summary>
internal static class RankingTelemetry
{
    /// <summary>Prompts per <c>judge batch</c> span.</summary>
    public const int BatchPrompts = 16;

    public static readonly ActivitySource Source = new("PrefPipe");

    public static readonly Meter Meter = new("PrefPipe");

    public static readonly Counter<long> JudgeCalls = Meter.CreateCounter<long>("prefpipe.judge.calls", "{call}", "Pairwise judge calls (cache hits are not calls), by judge kind and outcome.");

    /// <summary>"llm" or "reward" (the part of a judge's name before its colon).</summary>
    public static string Kind(string judgeName)
    {
        int colon = judgeName.IndexOf(':', StringComparison.Ordinal);
        return colon < 0 ? judgeName : judgeName[..colon];
    }
}
