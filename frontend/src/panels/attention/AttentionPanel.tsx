// The dashboard's Attention panel (view kind `attention`, `run.log_attention`).

export function AttentionPanel() {
  return <section class="panel" data-testid="panel-attention" />;
}
