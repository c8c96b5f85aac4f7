using Microsoft.Extensions.Options;
using System.Text.Json;
using PrefPipe.Models.Reward;

namespace PrefPipe.Models.Tests.Reward;

public sealed class OnnxRewardModelTests
{
    private static readonly string TinyDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-reward-onnx");

    private sealed record Reference(int[][] Inputs, float[] Logits, int PadId);

    private static Reference LoadReference()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TinyDir, "reference.json")));
        var root = doc.RootElement;
        var ids = root.GetProperty("input_ids").EnumerateArray().Select(r => r.EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToArray();
        var mask = root.GetProperty("attention_mask").EnumerateArray().Select(r => r.EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToArray();
        var logits = root.GetProperty("logits").EnumerateArray().Select(r => r[0].GetSingle()).ToArray();
        // Strip the reference's right padding: our scorer pads by itself.
        var unpadded = ids.Select((row, i) => row.Where((_, j) => mask[i][j] == 1).ToArray()).ToArray();
        return new Reference(unpadded, logits, root.GetProperty("pad_id").GetInt32());
    }

    private static OnnxRewardModel LoadTiny(RewardModelOptions? options = null)
    {
        options ??= new RewardModelOptions();
        options.PadTokenId ??= LoadReference().PadId;
        return OnnxRewardModel.Load(TinyDir, tokenizer: null, options);
    }

    [Fact]
    public void ScoreIds_ReferenceBatch_MatchesTorchOnnxLogitsWithin1e4()
    {
        var reference = LoadReference();
        using var model = LoadTiny();

        var result = model.ScoreIds(reference.Inputs);

        Assert.Empty(result.Rejections);
        for (int i = 0; i < reference.Logits.Length; i++)
            Assert.True(Math.Abs(reference.Logits[i] - result.Scores[i]) <= 1e-4, $"row {i}: expected {reference.Logits[i]}, got {result.Scores[i]}");
    }

    [Fact]
    public void Load_AutoPadding_DetectsRightPaddingForPadIdPoolingModel()
    {
        using var model = LoadTiny();

        Assert.Equal(RewardPadding.Right, model.PaddingSide);
        Assert.Equal(["input_ids", "attention_mask"], model.InputNames);
        Assert.Equal("CPUExecutionProvider", model.ExecutionProvider);
    }

    // The GPU build of ONNX Runtime lists CUDAExecutionProvider even where its libraries do not load (a CPU host, or
    // a GPU host without cuBLAS/cuDNN on the loader path); appending it then throws. These hold in both builds: run
    // them with -p:OnnxBackend=gpu on a host without CUDA to see the fallback.
    [Fact]
    public void Load_DeviceAuto_RunsOnAProviderThatLoadsAndSaysWhyNotCuda()
    {
        var ort = PrefPipe.Models.Runtime.OnnxRuntimeInfo.Describe();
        var reference = LoadReference();

        using var model = LoadTiny(new RewardModelOptions { Device = RewardDevice.Auto });

        Assert.Equal(ort.CudaUsable ? "CUDAExecutionProvider" : "CPUExecutionProvider", model.ExecutionProvider);
        if (ort.Providers.Contains("CUDAExecutionProvider") && !ort.CudaUsable)
            Assert.Contains("CUDA provider does not load", model.ExecutionProviderNote, StringComparison.Ordinal);
        else
            Assert.Null(model.ExecutionProviderNote);
        var scores = model.ScoreIds(reference.Inputs).Scores;
        Assert.Equal(reference.Logits.Length, scores.Count);
    }

    [Fact]
    public void Load_DeviceCudaWhereCudaCannotRun_ThrowsNamingTheModelAndWhy()
    {
        var ort = PrefPipe.Models.Runtime.OnnxRuntimeInfo.Describe();
        var options = new RewardModelOptions { Device = RewardDevice.Cuda, PadTokenId = LoadReference().PadId };

        if (ort.CudaUsable)
        {
            using var onGpu = OnnxRewardModel.Load(TinyDir, tokenizer: null, options);
            Assert.Equal("CUDAExecutionProvider", onGpu.ExecutionProvider);
            return;
        }
        var ex = Assert.Throws<InvalidOperationException>(() => OnnxRewardModel.Load(TinyDir, tokenizer: null, options));
        Assert.Contains(Path.Combine(TinyDir, "model.onnx"), ex.Message, StringComparison.Ordinal);
        Assert.Contains(ort.Providers.Contains("CUDAExecutionProvider") ? "does not load here" : "no CUDA provider", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ScoreIds_BatchOfOneVersusBatched_GivesSameScoresInCallerOrder()
    {
        var reference = LoadReference();
        using var single = LoadTiny(new RewardModelOptions { BatchSize = 1 });
        using var batched = LoadTiny(new RewardModelOptions { BatchSize = 4 });
        var reversed = reference.Inputs.Reverse().ToArray();

        var a = single.ScoreIds(reversed).Scores;
        var b = batched.ScoreIds(reversed).Scores;

        for (int i = 0; i < a.Count; i++) Assert.Equal(a[i], b[i], 4);
        Assert.Equal(reference.Logits[0], b[^1], 4);
    }

    [Fact]
    public void ScoreIds_TooLongWithRejectPolicy_RejectsWithReasonAndScoresTheRest()
    {
        var reference = LoadReference();
        using var model = LoadTiny(new RewardModelOptions { MaxLength = 25, Truncation = RewardTruncation.Reject });

        var result = model.ScoreIds(reference.Inputs);

        var rejected = Assert.Single(result.Rejections);
        Assert.Equal(2, rejected.Index); // the 30-token row
        Assert.Contains("30 tokens, more than max_length 25", rejected.Reason, StringComparison.Ordinal);
        Assert.True(float.IsNaN(result.Scores[2]));
        Assert.Equal(reference.Logits[0], result.Scores[0], 4);
    }

    [Fact]
    public void ScoreIds_LeftTruncation_ScoresTheLastMaxLengthTokens()
    {
        var reference = LoadReference();
        using var truncating = LoadTiny(new RewardModelOptions { MaxLength = 10, Truncation = RewardTruncation.Left });
        using var plain = LoadTiny();
        int[] row = reference.Inputs[2];

        float truncated = truncating.ScoreIds([row]).Scores[0];
        float tail = plain.ScoreIds([row[^10..]]).Scores[0];

        Assert.Equal(tail, truncated, 5);
        Assert.NotEqual(reference.Logits[2], truncated, 3);
    }

    [Fact]
    public void ScoreIds_EmptySequence_IsRejectedNotScored()
    {
        using var model = LoadTiny();

        var result = model.ScoreIds([Array.Empty<int>(), [36, 224, 265]]);

        Assert.Equal(0, Assert.Single(result.Rejections).Index);
        Assert.False(float.IsNaN(result.Scores[1]));
    }

    [Fact]
    public void Load_MissingModel_NamesThePathAndWhatWasExpected()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-reward-").FullName;

        var ex = Assert.Throws<FileNotFoundException>(() => OnnxRewardModel.Load(dir, null, new RewardModelOptions { PadTokenId = 0 }));

        Assert.Contains(Path.Combine(dir, "model.onnx"), ex.Message, StringComparison.Ordinal);
        Assert.Contains("tokenizer.json", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_NoTokenizerAndNoPadId_SaysToSetPadTokenId()
    {
        var ex = Assert.Throws<InvalidDataException>(() => OnnxRewardModel.Load(TinyDir, null));

        Assert.Contains("PadTokenId", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_InvalidOptions_NamesEveryBadOption()
    {
        var options = new RewardModelOptions { BatchSize = 0, MaxLength = 4096, MaxTokensPerBatch = 100 };

        var ex = Assert.Throws<OptionsValidationException>(() => OnnxRewardModel.Load(TinyDir, null, options));

        Assert.Contains("BatchSize", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ScoreIds_CancelledToken_Throws()
    {
        using var model = LoadTiny();
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        Assert.ThrowsAny<OperationCanceledException>(() => model.ScoreIds(LoadReference().Inputs, cancellationToken: cts.Token));
    }
}
