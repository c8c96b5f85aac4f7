using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Text.Tokenizers;
using PrefPipe.Trainer.Data;
using PrefPipe.Trainer.Objectives;
using Xunit.Abstractions;

namespace PrefPipe.Trainer.Tests;

/// <summary>MIPO (loss_type mipo) on the demo policy: training on some pairs moves held-out pairs the right way.</summary>
public sealed class DpoTrainerMipoTests(ITestOutputHelper output)
{
    private static readonly string Policy = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "policy");

    private static readonly string[] TrainTitles = ["Driftwood", "Kite Season", "Velvet Hour", "Marble Coast", "Orchid Line", "The Long Table"];

    private static readonly string[] HeldOutTitles = ["The Night Archive", "The Fourth Bell", "Paper Lanterns", "Northern Tide"];

    private static PairEncoder Encoder() => new(new CompletionEncoder(HfTokenizer.Load(Policy), null), 128, 32, TruncationMode.KeepEnd);

    private static List<EncodedPair> TrainPairs()
    {
        var encoder = Encoder();
        return TrainTitles.SelectMany((t, i) => new[]
        {
            encoder.EncodeRendered($"t{i}a", $"Review of {t}:", " The acting was gripping. I found the music brilliant. A joy to watch.", " The pacing was tedious. Its dialogue felt flat. I hated it.").Pair!,
            encoder.EncodeRendered($"t{i}b", $"Review of {t}:", " I found the story charming. Its cast felt excellent. I would watch it again.", " The ending was painful. I found the music lifeless. Not recommended.").Pair!,
        }).ToList();
    }

    /// <summary>Unseen titles and sentences, same sentiment vocabulary: positive chosen, negative rejected.</summary>
    private static List<EncodedPair> HeldOutPairs()
    {
        var encoder = Encoder();
        return HeldOutTitles.SelectMany((t, i) => new[]
        {
            encoder.EncodeRendered($"h{i}a", $"Review of {t}:", " Its soundtrack felt moving. The cast was brilliant. A joy to watch.", " Its story felt lifeless. The acting was tedious. Not recommended.").Pair!,
            encoder.EncodeRendered($"h{i}b", $"Review of {t}:", " The dialogue was charming. I found the ending warm. I would watch it again.", " The music was flat. I found the cast painful. I hated it.").Pair!,
        }).ToList();
    }

    /// <summary>
    /// Per held-out pair, MIPO's implicit reward margin: [Ā_θ(y_w) − Ā_ref(y_w)] − [Ā_θ(y_l) − Ā_ref(y_l)], Ā the mean
    /// per-token log-prob (MIPO's A). Zero for every pair when θ = ref.
    /// </summary>
    private static async Task<double[]> HeldOutMargins(string model, List<EncodedPair> pairs)
    {
        var scratch = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-mipo-eval-").FullName);
        var policy = (await ReferencePass.ComputeOrReuseAsync(scratch, "policy", pairs, model, 8, TrainingDtype.Auto)).Rows;
        var reference = (await ReferencePass.ComputeOrReuseAsync(scratch, "ref", pairs, Policy, 8, TrainingDtype.Auto)).Rows;
        static double Mean(double logps, int tokens) => logps / Math.Max(1, tokens);
        return pairs.Select(p =>
        {
            ReferenceLogProbRow π = policy[p.Key], r = reference[p.Key];
            return Mean(π.ChosenLogps, π.ChosenTokens) - Mean(r.ChosenLogps, r.ChosenTokens)
                 - (Mean(π.RejectedLogps, π.RejectedTokens) - Mean(r.RejectedLogps, r.RejectedTokens));
        }).ToArray();
    }

    [Fact]
    public async Task Train_Mipo_RaisesHeldOutImplicitMarginAndAccuracy()
    {
        var train = TrainPairs();
        var heldOut = HeldOutPairs();
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-mipo-ref-").FullName);
        var reference = (await ReferencePass.ComputeOrReuseAsync(store, "ref", train, Policy, 8, TrainingDtype.Auto)).Rows;
        var options = new DpoTrainingOptions
        {
            Objective = new ObjectiveOptions { LossType = "mipo" }, // β = 20, q = softplus (the paper's defaults)
            LearningRate = 5e-4, MaxSteps = 10, PerDeviceTrainBatchSize = 4, LoggingSteps = 1, WarmupRatio = 0, Seed = 5, MaxLength = 128, MaxPromptLength = 32,
        };

        var before = await HeldOutMargins(Policy, heldOut);
        var result = new DpoTrainer(options).Train(Policy, train, reference, Directory.CreateTempSubdirectory("prefpipe-mipo-").FullName);
        var after = await HeldOutMargins(result.FinalCheckpoint, heldOut);

        // The untouched policy is its own reference: margins exactly zero, accuracy 0.
        Assert.All(before, m => Assert.Equal(0, m, 6));
        double accuracy = after.Count(m => m > 0) / (double)after.Length;
        output.WriteLine($"held-out implicit margin mean {after.Average():F4}, min {after.Min():F4}; accuracy {accuracy:P0}");
        Assert.True(after.Average() > 0.05, $"mean held-out implicit margin {after.Average():F4} (per-token log-prob units)");
        Assert.True(accuracy >= 0.75, $"held-out preference accuracy {accuracy:P0}; margins {string.Join(", ", after.Select(m => m.ToString("F3", System.Globalization.CultureInfo.InvariantCulture)))}");
        // And on the training pairs the loss falls.
        double Loss(long step) => result.Metrics.Single(m => m.Step == step && m.Name == "loss").Value;
        Assert.True(Enumerable.Range(8, 3).Average(s => Loss(s)) < Enumerable.Range(1, 3).Average(s => Loss(s)));
    }
}
