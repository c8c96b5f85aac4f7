using System.Globalization;

namespace PrefPipe.Host.Runs;

/// <summary>One short line per stage for the end-of-run table: the figures a reader looks for first.</summary>
internal static class StageNotes
{
    /// <summary>A short note for a stage's summary values; unknown stages list their first values.</summary>
    public static string For(StageRecord stage)
    {
        var s = stage.Summary;
        string V(string key, string format) => s.TryGetValue(key, out double v) ? v.ToString(format, CultureInfo.InvariantCulture) : "?";
        string P(string key) => s.TryGetValue(key, out double v) ? (v * 100).ToString("F1", CultureInfo.InvariantCulture) + "%" : "?";
        if (s.Count == 0) return "";
        return stage.Name switch
        {
            PipelineStage.Ingest => $"{V("candidates", "F0")} candidates",
            PipelineStage.Rank => $"{V("judge_calls", "F0")} judge calls",
            PipelineStage.Split => $"easy {P("easy_fraction")}, difficult {P("difficult_fraction")}",
            PipelineStage.Dpo => $"{V("steps", "F0")} steps, margin {V("rewards/margins", "F2")}, acc {P("rewards/accuracies")}",
            PipelineStage.Ppo => s.ContainsKey("objective/kl") ? $"{V("steps", "F0")} steps, KL {V("objective/kl", "F2")}" : $"{V("steps", "F0")} steps",
            PipelineStage.Evaluate => $"win {P("win_rate")}, reward {V("mean_reward_start", "F2")} → {V("mean_reward_final", "F2")}",
            _ => string.Join(", ", s.Take(3).Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:G4}"))),
        };
    }
}
