namespace PrefPipe.Text.Templates;

/// <summary>When to render prompts with the policy's chat template.</summary>
public enum ChatTemplateMode
{
    /// <summary>When the policy has a chat template (tokenizer_config.json or chat_template.jinja), else raw text.</summary>
    Auto,

    /// <summary>Always; fail if the policy has none.</summary>
    Always,

    /// <summary>Never: prompts are fed as raw text (messages are rejected).</summary>
    Never,
}
