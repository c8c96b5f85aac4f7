namespace PrefPipe.Text.Templates;

/// <summary>One turn of a conversation, as chat templates see it: <c>{"role": Role, "content": Content}</c>.</summary>
/// <param name="Role">Usually "system", "user" or "assistant" (some templates accept "tool").</param>
/// <param name="Content">The turn's text, passed to the template unchanged.</param>
public sealed record ChatMessage(string Role, string Content);
