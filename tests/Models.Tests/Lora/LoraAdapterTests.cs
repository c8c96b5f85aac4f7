using System.Text.Json.Nodes;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Lora;
using PrefPipe.Models.SafeTensors;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Lora;

public sealed class LoraAdapterTests
{
    private static readonly string TinyDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-llama");
    private static readonly string PeftDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "peft-lora");

    private static CausalLM Tiny() => CausalLM.Load(TinyDir, CPU, ScalarType.Float32);

    /// <summary>Max |Δ| over real (unpadded) tokens of the fixture batch.</summary>
    private static float MaxDiff(Tensor logits, Tensor expected, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var valid = mask.unsqueeze(-1).to(ScalarType.Bool).expand_as(logits);
        return (logits - expected).abs().masked_select(valid).max().item<float>();
    }

    private static Tensor Logits(CausalLM model, SafeTensorsFile expected)
    {
        using var _ = no_grad();
        return model.Logits(new CausalLMInput(expected.Load("input_ids"), expected.Load("attention_mask")));
    }

    [Theory]
    [InlineData("all-linear-r4", 28)]
    [InlineData("rslora-qv-r8", 8)]
    public void Load_AdapterInPeftLayout_ReproducesTorchLogitsWithin1e4(string adapter, int tensors)
    {
        using var scope = NewDisposeScope();
        using var model = Tiny();
        using var expected = SafeTensorsFile.Open(Path.Combine(PeftDir, "expected.safetensors"));
        using var lora = LoraAdapter.Load(model, Path.Combine(PeftDir, adapter));

        var logits = Logits(model, expected);

        Assert.Equal(tensors, lora.Parameters().Count());
        float diff = MaxDiff(logits, expected.Load("logits_" + adapter), expected.Load("attention_mask"));
        Assert.True(diff <= 1e-4f, $"max |Δ logits| = {diff}");
    }

    [Fact]
    public void Merge_AllLinearAdapter_EqualsLiveApplicationWithin1e5()
    {
        using var scope = NewDisposeScope();
        using var model = Tiny();
        using var expected = SafeTensorsFile.Open(Path.Combine(PeftDir, "expected.safetensors"));
        using var lora = LoraAdapter.Load(model, Path.Combine(PeftDir, "all-linear-r4"));
        var live = Logits(model, expected);

        lora.Merge();
        var merged = Logits(model, expected);

        Assert.False(lora.Enabled);
        float diff = MaxDiff(merged, live, expected.Load("attention_mask"));
        Assert.True(diff <= 1e-5f, $"max |merged − live| = {diff}");
        Assert.True(MaxDiff(live, Logits(Tiny(), expected), expected.Load("attention_mask")) > 0.5f, "the adapter must change the logits for this test to mean anything");
    }

    [Fact]
    public void Enabled_Off_GivesTheBaseModelExactlyAndOnAgainTheAdapter()
    {
        using var scope = NewDisposeScope();
        using var model = Tiny();
        using var expected = SafeTensorsFile.Open(Path.Combine(PeftDir, "expected.safetensors"));
        var baseLogits = Logits(model, expected);
        using var lora = LoraAdapter.Load(model, Path.Combine(PeftDir, "rslora-qv-r8"));

        lora.Enabled = false;
        var off = Logits(model, expected);
        lora.Enabled = true;
        var on = Logits(model, expected);

        Assert.Equal(0f, (off - baseLogits).abs().max().item<float>());
        Assert.True(MaxDiff(on, expected.Load("logits_rslora-qv-r8"), expected.Load("attention_mask")) <= 1e-4f);
    }

    [Fact]
    public void Inject_Fresh_FreezesBaseInitialisesLikePeftAndChangesNothing()
    {
        using var scope = NewDisposeScope();
        using var model = Tiny();
        using var expected = SafeTensorsFile.Open(Path.Combine(PeftDir, "expected.safetensors"));
        var before = Logits(model, expected);
        using var lora = LoraAdapter.Inject(model, new LoraOptions { R = 4, Alpha = 8, TargetModules = ["all-linear"] }, seed: 7);

        Assert.Equal(14, lora.ModuleNames.Count); // 7 linear layers × 2 decoder layers; lm_head left out
        Assert.DoesNotContain("lm_head", lora.ModuleNames);
        Assert.All(model.parameters(), p => Assert.False(p.requires_grad));
        Assert.All(lora.Parameters(), p => Assert.True(p.Parameter.requires_grad));
        var (_, a) = lora.Parameters().First(p => p.Name == "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight");
        Assert.Equal(new long[] { 4, 160 }, a.shape);
        double bound = 1 / Math.Sqrt(160); // kaiming-uniform with a = √5 is U(−1/√in, 1/√in)
        Assert.True(a.abs().max().item<float>() <= bound && a.abs().max().item<float>() > 0.8 * bound);
        Assert.Equal(0f, lora.Parameters().Where(p => p.Name.Contains("lora_B", StringComparison.Ordinal)).Sum(p => p.Parameter.abs().sum().item<float>()));
        Assert.Equal(0f, (Logits(model, expected) - before).abs().max().item<float>());
    }

    [Fact]
    public void Save_ThenLoad_RoundTripsPeftFilesAndLogits()
    {
        using var scope = NewDisposeScope();
        string dir = Directory.CreateTempSubdirectory("prefpipe-lora-").FullName;
        using var expected = SafeTensorsFile.Open(Path.Combine(PeftDir, "expected.safetensors"));
        Tensor trained;
        using (var model = Tiny())
        {
            using var lora = LoraAdapter.Inject(model, new LoraOptions { R = 2, Alpha = 6, Dropout = 0.1, TargetModules = ["q_proj", "down_proj"], UseRslora = true }, seed: 3);
            using (no_grad())
                foreach (var (_, p) in lora.Parameters()) p.uniform_(-0.2, 0.2);
            trained = Logits(model, expected);
            lora.Save(dir, TinyDir);
        }

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!.AsObject();
        Assert.Equal("LORA", (string?)config["peft_type"]);
        Assert.Equal("CAUSAL_LM", (string?)config["task_type"]);
        Assert.Equal(2, (int)config["r"]!);
        Assert.Equal(6, (int)config["lora_alpha"]!);
        Assert.Equal(0.1, (double)config["lora_dropout"]!);
        Assert.Equal("none", (string?)config["bias"]);
        Assert.True((bool)config["use_rslora"]!);
        Assert.False((bool)config["fan_in_fan_out"]!);
        Assert.Equal(TinyDir, (string?)config["base_model_name_or_path"]);
        Assert.Equal(["down_proj", "q_proj"], config["target_modules"]!.AsArray().Select(n => (string)n!));
        using (var weights = SafeTensorsFile.Open(Path.Combine(dir, "adapter_model.safetensors")))
        {
            Assert.Equal(8, weights.Tensors.Count);
            Assert.Equal(new long[] { 2, 64 }, weights.Tensors["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"].Shape);
            Assert.Equal(new long[] { 64, 2 }, weights.Tensors["base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"].Shape);
            Assert.Equal(new long[] { 64, 2 }, weights.Tensors["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"].Shape);
        }
        using var reloaded = AdapterModels.Load(dir, CPU, ScalarType.Float32); // base from base_model_name_or_path, merged
        Assert.True(MaxDiff(Logits(reloaded, expected), trained, expected.Load("attention_mask")) <= 1e-5f);
    }

    [Fact]
    public void Load_UnknownKey_IsRefusedNamingIt()
    {
        string dir = CopyAdapter("rslora-qv-r8", tensors => tensors["base_model.model.model.layers.0.mlp.up_proj.lora_A.weight"] = zeros(8, 64));

        using var model = Tiny();
        var ex = Assert.Throws<InvalidDataException>(() => LoraAdapter.Load(model, dir));

        Assert.Contains("unknown key(s) base_model.model.model.layers.0.mlp.up_proj.lora_A.weight", ex.Message, StringComparison.Ordinal);
        Assert.All(model.named_modules(), m => Assert.False(m.module is PrefPipe.Models.Decoders.Modules.HfLinear { Delta: not null }, $"{m.name} kept an adapter after the failed load"));
    }

    [Fact]
    public void Load_MisshapedKey_IsRefusedWithBothShapes()
    {
        string dir = CopyAdapter("rslora-qv-r8", tensors => tensors["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"] = zeros(32, 4));

        using var model = Tiny();
        var ex = Assert.Throws<InvalidDataException>(() => LoraAdapter.Load(model, dir));

        Assert.Contains("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight: file [32, 4], expected [32, 8]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingKey_IsRefusedNamingIt()
    {
        string dir = CopyAdapter("rslora-qv-r8", tensors => tensors.Remove("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"));

        using var model = Tiny();
        var ex = Assert.Throws<InvalidDataException>(() => LoraAdapter.Load(model, dir));

        Assert.Contains("missing base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("use_dora", "true", "use_dora is true")]
    [InlineData("bias", "\"all\"", "bias is 'all'")]
    [InlineData("peft_type", "\"IA3\"", "peft_type is 'IA3'")]
    [InlineData("modules_to_save", "[\"lm_head\"]", "modules_to_save is set")]
    [InlineData("rank_pattern", "{\"q_proj\": 2}", "rank_pattern is set")]
    public void Load_ConfigWeCannotApply_IsRefusedNamingTheField(string key, string json, string message)
    {
        string dir = CopyAdapter("rslora-qv-r8", _ => { });
        string path = Path.Combine(dir, "adapter_config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        config[key] = JsonNode.Parse(json);
        File.WriteAllText(path, config.ToJsonString());

        using var model = Tiny();
        var ex = Assert.Throws<InvalidDataException>(() => LoraAdapter.Load(model, dir));

        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
        Assert.Contains("adapter_config.json", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Inject_TargetsMatchingNothing_ListsTheModelsLinearLayers()
    {
        using var model = Tiny();

        var ex = Assert.Throws<ArgumentException>(() => LoraAdapter.Inject(model, new LoraOptions { TargetModules = ["query_key_value"] }, seed: 0));

        Assert.Contains("select no linear layer", ex.Message, StringComparison.Ordinal);
        string listed = ex.Message[(ex.Message.IndexOf("its linear layers are ", StringComparison.Ordinal) + "its linear layers are ".Length)..];
        Assert.Equal(["down_proj", "gate_proj", "k_proj", "lm_head", "o_proj", "q_proj", "up_proj", "v_proj"],
            listed.Split(" (or")[0].Split(", ").Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Inject_DefaultTargetsOnPhi3_AreRefusedNamingItsFusedProjections()
    {
        using var model = CausalLM.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-phi3"), CPU, ScalarType.Float32);

        // PEFT has no default target_modules for phi3 either; Phi-3's attention projection is the fused qkv_proj.
        var ex = Assert.Throws<ArgumentException>(() => LoraAdapter.Inject(model, new LoraOptions(), seed: 0));

        Assert.Contains("phi3 model", ex.Message, StringComparison.Ordinal);
        string listed = ex.Message[(ex.Message.IndexOf("its linear layers are ", StringComparison.Ordinal) + "its linear layers are ".Length)..];
        Assert.Equal(["down_proj", "gate_up_proj", "lm_head", "o_proj", "qkv_proj"], listed.Split(" (or")[0].Split(", ").Order(StringComparer.Ordinal));
        using var adapter = LoraAdapter.Inject(model, new LoraOptions { TargetModules = ["qkv_proj"] }, seed: 0);
        Assert.Equal(["model.layers.0.self_attn.qkv_proj", "model.layers.1.self_attn.qkv_proj"], adapter.ModuleNames);
    }

    [Fact]
    public void MergeToFolder_WritesAFullCheckpointThatLoadsAsAPlainModel()
    {
        using var scope = NewDisposeScope();
        string output = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-merged-").FullName, "merged");
        using var expected = SafeTensorsFile.Open(Path.Combine(PeftDir, "expected.safetensors"));

        AdapterModels.MergeToFolder(TinyDir, Path.Combine(PeftDir, "all-linear-r4"), output);

        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
        Assert.False(File.Exists(Path.Combine(output, "adapter_config.json")));
        using var merged = CausalLM.Load(output, CPU, ScalarType.Float32);
        Assert.True(MaxDiff(Logits(merged, expected), expected.Load("logits_all-linear-r4"), expected.Load("attention_mask")) <= 1e-4f);
    }

    [Theory]
    [InlineData("model.layers.0.self_attn.q_proj", new[] { "q_proj", "v_proj" }, false, true)]
    [InlineData("model.layers.0.self_attn.k_proj", new[] { "q_proj", "v_proj" }, false, false)]
    [InlineData("model.layers.0.self_attn.xq_proj", new[] { "q_proj" }, false, false)]
    [InlineData("model.layers.3.mlp.gate_up_proj", new[] { "gate_up_proj" }, false, true)]
    [InlineData("lm_head", new[] { "all-linear" }, false, false)]
    [InlineData("model.layers.0.mlp.down_proj", new[] { "all-linear" }, false, true)]
    [InlineData("model.layers.1.self_attn.v_proj", new[] { @".*\.1\.self_attn\.(q|v)_proj" }, true, true)]
    [InlineData("model.layers.0.self_attn.v_proj", new[] { @".*\.1\.self_attn\.(q|v)_proj" }, true, false)]
    public void Matches_FollowsPeftsTargetModuleRules(string module, string[] targets, bool regex, bool expected) =>
        Assert.Equal(expected, LoraTargets.Matches(targets, module, regex));

    /// <summary>A copy of a fixture adapter with its tensors edited.</summary>
    private static string CopyAdapter(string name, Action<Dictionary<string, Tensor>> edit)
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-peft-").FullName;
        File.Copy(Path.Combine(PeftDir, name, "adapter_config.json"), Path.Combine(dir, "adapter_config.json"));
        using var scope = NewDisposeScope();
        using var file = SafeTensorsFile.Open(Path.Combine(PeftDir, name, "adapter_model.safetensors"));
        var tensors = file.Tensors.Keys.ToDictionary(k => k, k => file.Load(k));
        edit(tensors);
        SafeTensorsWriter.Write(Path.Combine(dir, "adapter_model.safetensors"), tensors);
        return dir;
    }
}
