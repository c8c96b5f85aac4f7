using System.Text.Json.Serialization;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Models.Generation;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Lora;
using PrefPipe.Models.Reward;
using PrefPipe.Models.Scoring;
using PrefPipe.Reporting;
using PrefPipe.Text.Tokenizers;
using PrefPipe.Trainer.Data;
using static TorchSharp.torch;

namespace PrefPipe.Trainer.Evaluation;

/// <summary>Evaluation on held-out prompts: how the start and the final policy are sampled (the <c>evaluation:</c> section).</summary>
public sealed class EvaluationOptions
{
    /// <summary>Samples per prompt from each policy.</summary>
    /// <value>Default 1; 1 to 64.</value>
    [System.ComponentModel.DataAnnotations.Range(1, 64)]
    public int SamplesPerPrompt { get; set; } = 1;

    /// <summary>New tokens per sample.</summary>
    /// <value>Default 64; 1 to 32768.</value>
    [System.ComponentModel.DataAnnotations.Range(1, 32_768)]
    public int MaxNewTokens { get; set; } = 64;

    /// <summary>Sampling temperature.</summary>
    /// <value>Default 1.0; 0 to 5.</value>
    [System.ComponentModel.DataAnnotations.Range(0.0, 5.0)]
    public double Temperature { get; set; } = 1.0;

    /// <summary>Seed; sample i of a prompt uses the same seed for both policies.</summary>
    /// <value>Default 7.</value>
    public long Seed { get; set; } = 7;
}

/// <summary>The outcome of comparing the final policy with the starting one on held-out prompts.</summary>
public sealed record EvaluationSummary
{
    /// <summary>Fraction of (prompt, sample) pairs where the final policy's sample has the higher reward; ties count ½.</summary>
    [JsonPropertyName("win_rate")] public double WinRate { get; init; }

    /// <summary>Mean reward of the starting policy's samples.</summary>
    [JsonPropertyName("mean_reward_start")] public double MeanRewardStart { get; init; }

    /// <summary>Mean reward of the final policy's samples.</summary>
    [JsonPropertyName("mean_reward_final")] public double MeanRewardFinal { get; init; }

    /// <summary>Mean over the final policy's samples of Σ_t (log π_final − log π_start): a Monte-Carlo KL(final ‖ start).</summary>
    [JsonPropertyName("mean_kl")] public double MeanKl { get; init; }

    /// <summary>Samples per policy.</summary>
    [JsonPropertyName("samples")] public int Samples { get; init; }
}

/// <summary>
/// Samples from the starting and the final policy on held-out prompts, scores both with the reward model, and reports
/// the win rate of final over start, the mean rewards and the mean KL; also a PNG of the two reward distributions.
/// </summary>
internal static class PolicyEvaluator
{
    /// <summary>Runs the evaluation.</summary>
    /// <param name="startPolicy">The starting policy's folder (its tokenizer decides the end-of-sequence ids).</param>
    /// <param name="finalPolicy">The trained policy's folder.</param>
    /// <param name="rewardModel">The reward model's folder.</param>
    /// <param name="options">Sampling options.</param>
    /// <param name="chartPath">Where to write the reward-distribution PNG, or null.</param>
    /// <param name="progress">Samples generated of total: the start policy's, then the final policy's (2 × prompts × samples per prompt).</param>
    /// <param name="cancellationToken">Checked per decoding step.</param>
    /// <param name="prompts">Held-out prompts encoded as ingest encodes prompts (<see cref="TrainingPrompt.Encode"/>: chat template, system prompt).</param>
    public static (EvaluationSummary Summary, IReadOnlyList<EvaluationRow> Rows) Evaluate(string startPolicy, string finalPolicy, string rewardModel,
        IReadOnlyList<TrainingPrompt> prompts, EvaluationOptions options, string? chartPath = null, IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        var encoder = PromptEncoder.Load(AdapterModels.ModelFolder(startPolicy));
        var tokenizer = encoder.Tokenizer;
        var requests = prompts.SelectMany(p => Enumerable.Range(0, options.SamplesPerPrompt).Select(i =>
            (p.PromptId, Prompt: p.Text, Index: i, Request: new GenerationRequest(p.Ids, options.Seed * 1_000_003 + i * 7919 + StableHash(p.PromptId))))).ToList();
        var generation = new GenerationOptions
        {
            MaxNewTokens = options.MaxNewTokens, Temperature = Math.Max(1e-6, options.Temperature), Greedy = options.Temperature == 0, EosTokenIds = encoder.EosTokenIds,
        };

        int total = 2 * requests.Count, done = 0;
        List<GenerationResult> Sample(string dir)
        {
            using var model = AdapterModels.Load(dir);
            using var fused = model.FuseProjections();   // the model does not change while it samples
            var generator = new TextGenerator(model, encoder.PadTokenId, ids => tokenizer.Decode(ids, skipSpecialTokens: true)) { Fused = fused };
            // 32 sequences at a time, continuously: a sample that ends makes room for the next.
            return [.. generator.Generate([.. requests.Select(c => c.Request)], generation, 32, (_, _) => progress?.Report((++done, total)), cancellationToken)];
        }
        progress?.Report((0, total));
        var start = Sample(startPolicy);
        var final = Sample(finalPolicy);

        // KL(final ‖ start) on the final policy's samples: log π_final from generation, log π_start scored on the same tokens.
        var kl = new double[final.Count];
        using (var startModel = AdapterModels.Load(startPolicy))
        using (no_grad())
        {
            int pad = encoder.PadTokenId;
            for (int i = 0; i < final.Count; i += 32)
            {
                using var scope = NewDisposeScope();
                var idx = Enumerable.Range(i, Math.Min(32, final.Count - i)).Where(j => final[j].NewIds.Count > 0).ToList();
                if (idx.Count == 0) continue;
                using var batch = CompletionBatch.Build(idx.Select(j => (requests[j].Request.PromptIds, final[j].NewIds)).ToList(), pad, startModel.Device);
                var startLogp = CompletionScorer.Score(startModel, batch).LogprobSum.cpu().data<float>().ToArray();
                for (int k = 0; k < idx.Count; k++) kl[idx[k]] = final[idx[k]].Logprobs.Sum(x => (double)x) - startLogp[k];
            }
        }

        var rewardTokenizer = HfTokenizer.Load(rewardModel);
        using var reward = OnnxRewardModel.Load(rewardModel, rewardTokenizer);
        var startScores = reward.ScoreTexts(requests.Select((r, i) => r.Prompt + (start[i].Text ?? "")).ToList(), cancellationToken: cancellationToken).Scores;
        var finalScores = reward.ScoreTexts(requests.Select((r, i) => r.Prompt + (final[i].Text ?? "")).ToList(), cancellationToken: cancellationToken).Scores;

        var rows = new List<EvaluationRow>();
        double wins = 0;
        for (int i = 0; i < requests.Count; i++)
        {
            wins += finalScores[i] > startScores[i] ? 1 : finalScores[i] == startScores[i] ? 0.5 : 0;
            rows.Add(new EvaluationRow { PromptId = requests[i].PromptId, Policy = "start", SampleIndex = requests[i].Index, Response = start[i].Text ?? "", Reward = startScores[i], Kl = 0 });
            rows.Add(new EvaluationRow { PromptId = requests[i].PromptId, Policy = "final", SampleIndex = requests[i].Index, Response = final[i].Text ?? "", Reward = finalScores[i], Kl = kl[i] });
        }
        var summary = new EvaluationSummary
        {
            WinRate = requests.Count == 0 ? double.NaN : wins / requests.Count,
            MeanRewardStart = startScores.Average(x => (double)x),
            MeanRewardFinal = finalScores.Average(x => (double)x),
            MeanKl = kl.Length == 0 ? 0 : kl.Average(),
            Samples = requests.Count,
        };
        if (chartPath is not null)
            Charts.Histogram(chartPath, $"Reward on held-out prompts (win rate {summary.WinRate:P0})", "reward",
                [new ChartSeries("start policy", [], startScores.Select(x => (double)x).ToArray()), new ChartSeries("final policy", [], finalScores.Select(x => (double)x).ToArray())],
                [new ChartMarker(summary.MeanRewardStart, "mean start"), new ChartMarker(summary.MeanRewardFinal, "mean final")]);
        return (summary, rows);
    }

    private static long StableHash(string s)
    {
        long h = 1469598103934665603;
        foreach (char c in s) h = unchecked((h ^ c) * 1099511628211);
        return h & 0x7fffffff;
    }
}
