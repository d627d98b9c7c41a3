// Placeholder until the Feature Maps tab lands: TensorBoard needs an ES module here.
export function render() {
  const p = document.createElement('p');
  p.textContent = 'Feature Maps';
  document.body.appendChild(p);
}
