import { render } from 'preact';
import './styles.css';
import { App } from './app';
import { loadMe } from './session';

render(<App />, document.getElementById('app')!);
void loadMe();
