using System.Text.Json;
using PrefPipe.Models.Generation;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Decoders.Families.Llama;
using PrefPipe.Models.Decoders.Modules;
using PrefPipe.Models.SafeTensors;
using PrefPipe.Models.Scoring;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Decoders;

public sealed class GenerationAndScoringTests
{
    private static readonly string TinyDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-llama");
    private static readonly string DemoDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "policy");

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    [Fact]
    public void Generate_Greedy_ReproducesTransformersContinuation()
    {
        using var model = CausalLM.Load(TinyDir, CPU);
        using var reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(TinyDir, "reference.json")));
        int[] prompt = Ints(reference.RootElement.GetProperty("greedy_prompt_ids"));
        int[] expected = Ints(reference.RootElement.GetProperty("greedy_output_ids"));

        var result = new TextGenerator(model, padTokenId: 3).Generate([new GenerationRequest(prompt, 0)],
            new GenerationOptions { Greedy = true, MaxNewTokens = expected.Length - prompt.Length });

        Assert.Equal(expected[prompt.Length..], result[0].NewIds);
        Assert.Equal(FinishReason.Length, result[0].FinishReason);
    }

    [Fact]
    public void Score_ReferenceBatch_SequenceLogProbsMatchTransformersWithin1e3()
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.Load(TinyDir, CPU);
        using var reference = SafeTensorsFile.Open(Path.Combine(TinyDir, "reference.safetensors"));
        var ids = reference.Load("input_ids").data<long>().ToArray();
        var mask = reference.Load("attention_mask").data<long>().ToArray();
        var expected = reference.Load("seq_logp").data<float>().ToArray();
        int t = ids.Length / 3;
        var items = Enumerable.Range(0, 3).Select(r =>
        {
            int n = (int)mask.Skip(r * t).Take(t).Sum();
            var row = ids.Skip(r * t).Take(n).Select(x => (int)x).ToArray();
            return ((IReadOnlyList<int>)row[..1], (IReadOnlyList<int>)row[1..]);
        }).ToList();

        using var _ = no_grad();
        using var batch = CompletionBatch.Build(items, 3, CPU);
        var scores = CompletionScorer.Score(model, batch).LogprobSum.data<float>().ToArray();

        for (int i = 0; i < 3; i++) Assert.True(Math.Abs(expected[i] - scores[i]) <= 1e-3, $"row {i}: {expected[i]} vs {scores[i]}");
    }

    [Fact]
    public void Score_ChunkedEntropy_EqualsFullVocabularyEntropy()
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.Load(TinyDir, CPU);
        using var _ = no_grad();
        var items = new List<(IReadOnlyList<int>, IReadOnlyList<int>)> { ([43, 72], [79, 379, 312, 267]), ([49], [337, 86]) };
        using var batch = CompletionBatch.Build(items, 3, CPU);

        var chunked = CompletionScorer.Score(model, batch, withEntropy: true, chunkRows: 2);
        var whole = CompletionScorer.Score(model, batch, withEntropy: true, chunkRows: 4096);
        // Direct: entropies from full logits at the predicting positions.
        var logits = model.Logits(new CausalLMInput(batch.InputIds, batch.AttentionMask));   // [2, 6, 768]
        var p = logits.softmax(-1);
        var h = -(p * logits.log_softmax(-1)).sum(-1);                                       // [2, 6]
        float direct0 = h[0].narrow(0, 1, 4).sum().item<float>();                             // positions 1..4 predict tokens 2..5

        Assert.Equal(direct0, chunked.EntropySum![0].item<float>(), 4);
        Assert.Equal(whole.EntropySum![1].item<float>(), chunked.EntropySum[1].item<float>(), 5);
        Assert.Equal([4f, 2f], chunked.TokenCount.data<float>().ToArray());
    }

    [Fact]
    public void KvCache_IncrementalDecoding_EqualsFullForward()
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.Load(TinyDir, CPU);
        using var _ = no_grad();
        var ids = tensor(new long[] { 43, 72, 79, 379, 312, 267 }, new long[] { 1, 6 });
        var full = model.Logits(new CausalLMInput(ids));                                     // [1, 6, 768]

        using var cache = new KvCache(model.Config, 1, 8, model.DType, CPU);
        model.Logits(new CausalLMInput(ids.narrow(1, 0, 4), Cache: cache));
        var step5 = model.Logits(new CausalLMInput(ids.narrow(1, 4, 1), ones(1, 5, int64), Cache: cache));
        var step6 = model.Logits(new CausalLMInput(ids.narrow(1, 5, 1), ones(1, 6, int64), Cache: cache));

        Assert.True((step5[0, 0] - full[0, 4]).abs().max().item<float>() < 1e-5f);
        Assert.True((step6[0, 0] - full[0, 5]).abs().max().item<float>() < 1e-5f);
    }

    [Fact]
    public void Generate_LeftPaddedBatch_EqualsEachPromptAlone()
    {
        using var model = CausalLM.Load(TinyDir, CPU);
        var generator = new TextGenerator(model, padTokenId: 3);
        var options = new GenerationOptions { Greedy = true, MaxNewTokens = 6, EosTokenIds = [] };
        GenerationRequest shortPrompt = new([43, 72], 1), longPrompt = new([49, 337, 86, 224, 20, 21], 2);

        var batched = generator.Generate([shortPrompt, longPrompt], options);
        var alone = generator.Generate([shortPrompt], options).Concat(generator.Generate([longPrompt], options)).ToList();

        Assert.Equal(alone[0].NewIds, batched[0].NewIds);
        Assert.Equal(alone[1].NewIds, batched[1].NewIds);
        for (int i = 0; i < 6; i++) Assert.Equal(alone[0].Logprobs[i], batched[0].Logprobs[i], 4);
    }

    [Fact]
    public void Generate_SameSeed_SameSampleWhateverTheBatch()
    {
        using var model = CausalLM.Load(DemoDir, CPU);
        var generator = new TextGenerator(model, padTokenId: 1);
        var options = new GenerationOptions { MaxNewTokens = 20, Temperature = 1.0, TopP = 0.95, TopK = 50 };
        GenerationRequest target = new([0, 60, 81, 90], 1234);

        var alone = generator.Generate([target], options)[0];
        var inBatch = generator.Generate([new GenerationRequest([0, 70], 9), target, new GenerationRequest([0, 60], 77)], options)[1];
        var otherSeed = generator.Generate([target with { Seed = 4321 }], options)[0];

        Assert.Equal(alone.NewIds, inBatch.NewIds);
        Assert.NotEqual(alone.NewIds, otherSeed.NewIds);
        Assert.All(alone.Logprobs, lp => Assert.True(lp <= 0));
    }

    [Fact]
    public void Generate_Cancelled_StopsAtAStep()
    {
        using var model = CausalLM.Load(TinyDir, CPU);
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        Assert.Throws<OperationCanceledException>(() => new TextGenerator(model, 3).Generate([new GenerationRequest([43], 0)], new GenerationOptions(), cts.Token));
    }

    [Fact]
    public void Save_ThenLoad_GivesIdenticalLogits_AlsoSharded()
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.Load(TinyDir, CPU);
        string single = Directory.CreateTempSubdirectory("prefpipe-save-").FullName;
        string sharded = Directory.CreateTempSubdirectory("prefpipe-shard-").FullName;
        model.Save(single);
        model.Save(sharded, maxShardBytes: 100_000);

        using var a = CausalLM.Load(single, CPU);
        using var b = CausalLM.Load(sharded, CPU);
        using var _ = no_grad();
        var ids = tensor(new long[] { 43, 72, 79, 379 }, new long[] { 1, 4 });
        var expected = model.Logits(new CausalLMInput(ids));

        Assert.True(File.Exists(Path.Combine(sharded, "model.safetensors.index.json")));
        Assert.True(Directory.GetFiles(sharded, "model-*-of-*.safetensors").Length > 1);
        Assert.Equal(0f, (a.Logits(new CausalLMInput(ids)) - expected).abs().max().item<float>());
        Assert.Equal(0f, (b.Logits(new CausalLMInput(ids)) - expected).abs().max().item<float>());
        var original = DecoderConfig.Load(TinyDir);
        var saved = DecoderConfig.Load(single);
        Assert.Equal(original with { Raw = null, EosTokenIds = [], LayerTypes = [] }, saved with { Raw = null, EosTokenIds = [], LayerTypes = [] });
        Assert.Equal(original.EosTokenIds, saved.EosTokenIds);
        Assert.Equal(original.LayerTypes, saved.LayerTypes);
    }

    [Fact]
    public void Save_TiedEmbeddings_WritesNoLmHead()
    {
        using var model = CausalLM.Load(DemoDir, CPU);
        string dir = Directory.CreateTempSubdirectory("prefpipe-tied-").FullName;

        model.Save(dir);

        using var file = SafeTensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        Assert.DoesNotContain("lm_head.weight", file.Tensors.Keys);
        Assert.Equal("pt", file.Metadata["format"]);
    }

    [Fact]
    public void MetaDevice_Llama3_8BConfig_HasTheRightShapesWithoutMemory()
    {
        var json = JsonDocument.Parse("""
            {"architectures": ["CausalLM"], "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096,
             "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
             "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072, "tie_word_embeddings": false,
             "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
             "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}
            """).RootElement;
        var config = LlamaConfig.Parse(json, "llama-3.1-8b");

        using var model = new CausalLM(config, ScalarType.BFloat16, new Device(TorchSharp.DeviceType.META));
        var shapes = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);

        Assert.Equal(8_030_261_248L, model.parameters().Sum(p => p.numel()));
        Assert.Equal([1024L, 4096L], shapes["model.layers.31.self_attn.k_proj.weight"]);
        Assert.Equal([14336L, 4096L], shapes["model.layers.0.mlp.gate_proj.weight"]);
        Assert.Equal([128256L, 4096L], shapes["lm_head.weight"]);
        Assert.Equal("llama3", config.RopeScaling!.Type);
        Assert.Equal([128001, 128008, 128009], config.EosTokenIds);
    }
}
