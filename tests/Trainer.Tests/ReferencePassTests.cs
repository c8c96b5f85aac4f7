using System.Diagnostics;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Scoring;
using PrefPipe.Trainer.Data;
using static TorchSharp.torch;

namespace PrefPipe.Trainer.Tests;

public sealed class ReferencePassTests
{
    private static readonly string Policy = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "policy");

    private static readonly List<EncodedPair> Pairs =
    [
        new("a", [5, 9, 14], [20, 21, 22, 23], [30, 31]),
        new("b", [7, 3], [40, 41, 42], [50, 51, 52, 53, 54]),
        new("c", [11, 12, 13, 6], [60, 61], [70, 71, 72]),
    ];

    /// <summary>A copy of the demo policy folder (config, tokenizer, a 3.2 MB model.safetensors) to modify.</summary>
    private static string CopyOfPolicy()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-refmodel-").FullName;
        foreach (string f in Directory.EnumerateFiles(Policy)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    [Fact]
    public void Fingerprint_OneWeightByteChangedBeyondTheFirstMiB_Changes()
    {
        string dir = CopyOfPolicy();
        string weights = Path.Combine(dir, "model.safetensors");
        long offset = new FileInfo(weights).Length - 1000; // tensor data, well past 1 MiB
        Assert.True(offset > 2 << 20);
        string before = ReferencePass.Fingerprint(Pairs, dir, ScalarType.Float32);

        using (var stream = new FileStream(weights, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Position = offset;
            int b = stream.ReadByte();
            stream.Position = offset;
            stream.WriteByte((byte)(b ^ 0x01));
        }

        Assert.NotEqual(before, ReferencePass.Fingerprint(Pairs, dir, ScalarType.Float32));
    }

    [Fact]
    public void Fingerprint_SameInputs_IsStable()
    {
        Assert.Equal(ReferencePass.Fingerprint(Pairs, Policy, ScalarType.Float32), ReferencePass.Fingerprint(Pairs, CopyOfPolicy(), ScalarType.Float32));
    }

    [Theory]
    [InlineData("tokenizer.json")]
    [InlineData("tokenizer_config.json")]
    [InlineData("tokenizer.model")]
    [InlineData("vocab.txt")]
    [InlineData("merges.txt")]
    public void Fingerprint_TokenizerFileChangedOrAdded_Changes(string file)
    {
        string dir = CopyOfPolicy();
        string before = ReferencePass.Fingerprint(Pairs, dir, ScalarType.Float32);

        File.AppendAllText(Path.Combine(dir, file), "\n");

        Assert.NotEqual(before, ReferencePass.Fingerprint(Pairs, dir, ScalarType.Float32));
    }

    [Fact]
    public void Fingerprint_OtherDtype_Changes()
    {
        Assert.NotEqual(ReferencePass.Fingerprint(Pairs, Policy, ScalarType.Float32), ReferencePass.Fingerprint(Pairs, Policy, ScalarType.BFloat16));
    }

    [Fact]
    public void Fingerprint_CheckpointOptimizerState_IsNotPartOfTheModel()
    {
        string dir = CopyOfPolicy();
        string before = ReferencePass.Fingerprint(Pairs, dir, ScalarType.Float32);

        Directory.CreateDirectory(Path.Combine(dir, Checkpoint.StateFolder));
        File.WriteAllBytes(Path.Combine(dir, Checkpoint.StateFolder, "optimizer.safetensors"), [1, 2, 3]);
        File.WriteAllBytes(Path.Combine(dir, Checkpoint.StateFolder, "extra.safetensors"), [4, 5, 6]);
        File.WriteAllBytes(Path.Combine(dir, "optimizer.safetensors"), [7, 8, 9]); // where checkpoints before the subfolder kept it

        Assert.Equal(before, ReferencePass.Fingerprint(Pairs, dir, ScalarType.Float32));
    }

    [Fact]
    public void ModelFingerprint_CheckpointTrainerState_IsNotPartOfTheModel()
    {
        // trainer_state.json holds wall-clock throughput: two identical trainings write different ones. A PPO stage that
        // starts from a stage-1 checkpoint must fingerprint the same model both times (else resume and reruns differ).
        string dir = CopyOfPolicy();
        File.WriteAllText(Path.Combine(dir, "trainer_state.json"), "{\"global_step\":3,\"log_history\":[{\"name\":\"tokens_per_second\",\"value\":6273.5}]}");
        string before = ReferencePass.ModelFingerprint(dir);

        File.WriteAllText(Path.Combine(dir, "trainer_state.json"), "{\"global_step\":3,\"log_history\":[{\"name\":\"tokens_per_second\",\"value\":6809.8}]}");

        Assert.Equal(before, ReferencePass.ModelFingerprint(dir));
        File.WriteAllText(Path.Combine(dir, "config.json"), File.ReadAllText(Path.Combine(dir, "config.json")).Replace("\"rms_norm_eps\"", "\"unused\": 1, \"rms_norm_eps\"", StringComparison.Ordinal));
        Assert.NotEqual(before, ReferencePass.ModelFingerprint(dir));
    }

    [Fact]
    public async Task ComputeOrReuseAsync_Bfloat16_StoresTheLogProbsOfABfloat16Reference()
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-ref-").FullName);

        var bf16 = await ReferencePass.ComputeOrReuseAsync(store, "ref", Pairs, Policy, 8, TrainingDtype.Bfloat16);
        var f32 = await ReferencePass.ComputeOrReuseAsync(store, "ref", Pairs, Policy, 8, TrainingDtype.Float32);

        Assert.False(f32.Reused); // another dtype is another artifact
        Assert.NotEqual(bf16.Path, f32.Path);
        var direct16 = ScoreDirectly(ScalarType.BFloat16);
        var direct32 = ScoreDirectly(ScalarType.Float32);
        for (int i = 0; i < Pairs.Count; i++)
        {
            var row = bf16.Rows[Pairs[i].Key];
            Assert.Equal(direct16[i], row.ChosenLogps, 5);
            Assert.Equal(direct16[Pairs.Count + i], row.RejectedLogps, 5);
            Assert.Equal(direct32[i], f32.Rows[Pairs[i].Key].ChosenLogps, 5);
        }
        // The two dtypes really differ on this model, so matching the bfloat16 scoring is not a coincidence.
        Assert.Contains(Enumerable.Range(0, 2 * Pairs.Count), i => Math.Abs(direct16[i] - direct32[i]) > 1e-3);
    }

    [Fact]
    public async Task ComputeOrReuseAsync_Metadata_NamesTheReferenceByFolderNameAndFingerprintNotHostPath()
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-ref-").FullName);

        var result = await ReferencePass.ComputeOrReuseAsync(store, "ref", Pairs, Policy + Path.DirectorySeparatorChar, 8, TrainingDtype.Float32);
        var metadata = (await ArtifactInspector.InspectAsync(store, result.Path, rows: 0)).Metadata;

        Assert.Equal("policy", metadata["reference_model"]);
        Assert.Equal(ReferencePass.ModelFingerprint(Policy), metadata["reference_model_fingerprint"]);
        Assert.DoesNotContain(metadata.Values, v => v.Contains(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar), StringComparison.Ordinal));
    }

    /// <summary>Summed response log-probs of all chosen then all rejected responses, scored in one batch in <paramref name="dtype"/> on the CPU.</summary>
    private static float[] ScoreDirectly(ScalarType dtype)
    {
        using var model = CausalLM.Load(Policy, CPU, dtype);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var items = Pairs.Select(p => ((IReadOnlyList<int>)p.PromptIds, (IReadOnlyList<int>)p.ChosenIds))
            .Concat(Pairs.Select(p => ((IReadOnlyList<int>)p.PromptIds, (IReadOnlyList<int>)p.RejectedIds))).ToList();
        using var batch = CompletionBatch.Build(items, model.Config.PadTokenId ?? (model.Config.EosTokenIds.Count > 0 ? model.Config.EosTokenIds[0] : 0), CPU);
        return CompletionScorer.Score(model, batch).LogprobSum.to(float32).cpu().data<float>().ToArray(); // [2·pairs] float32
    }

    [Fact]
    public async Task ComputeOrReuseAsync_200kStoredRows_ReusesEveryRow()
    {
        // The reuse check matched every pair against every stored row (2·10¹⁰ comparisons here: 7 minutes on 3412c7c); a set
        // makes it linear (about a second). No timing is asserted: the suite's own run time shows a regression.
        var pairs = Enumerable.Range(0, 200_000).Select(i => new EncodedPair($"pair-{i:D6}", [1, 2], [3], [4])).ToList();
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-ref-").FullName);
        string path = $"ref/reference_logps-{ReferencePass.Fingerprint(pairs, Policy, ScalarType.Float32)[..16]}.parquet";
        await ParquetArtifacts.WriteAsync(store, path, pairs.Select(p => new ReferenceLogProbRow { PromptId = p.Key, ChosenLogps = -1, RejectedLogps = -2, ChosenTokens = 1, RejectedTokens = 1, Dispersion = 0.5 }));
        var result = await ReferencePass.ComputeOrReuseAsync(store, "ref", pairs, Policy, 8, TrainingDtype.Float32);

        Assert.True(result.Reused);
        Assert.Equal(200_000, result.Rows.Count);
        Assert.All(pairs.Take(1000), p => Assert.Equal(-1, result.Rows[p.Key].ChosenLogps));
    }
}
